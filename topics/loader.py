"""Load topics/content/<topic>/ (Markdown with YAML front matter) into the database.

Everything is parsed and validated before anything is written, and the writes run in one
transaction, so a malformed file leaves the database as it was. Rows are upserted by slug and
rows whose file is gone are deleted, so loading twice changes nothing.
"""

import difflib
import hashlib
import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils.module_loading import import_string

from prepsite.links import lab_link
from prepsite.shared_pages import shared_pages_clear
from topics.content_files import SourceFile, _order, _Problems, _slug, _text, parse_file
from topics.markdown import LinkError, LinkErrors, Rendered, ResolvedLink, render_markdown
from topics.models import RESERVED_SECTION_SLUGS, Question, Section, Topic

DEFAULT_CONTENT_DIR = Path(settings.BASE_DIR) / "topics" / "content"
DIAGRAM_FILE = "diagram.html"  # optional: an accessible SVG figure whose href="section:…" links are checked
DIAGRAM_LINK = re.compile(r'href="(lab|section|question):([^"]*)"')
LEVELS = {choice.value for choice in Question.Level}
MAX_FOLLOWUP_DEPTH = 3  # the interviewer's push, then two more on the same choice
KINDS = {choice.value for choice in Question.Kind}
# Ids the overview and chapter pages use themselves; a section slug or heading with one would clash.
PAGE_IDS = {
    "main", "contents", "diagram", "progress", "sections", "messages", "nav-due", "nav-account",
    "chapters", "all-headings", "chapter", "understood", "chapter-nav", "top",
}  # fmt: skip
PAGE_ID_PREFIXES = ("toc-check-", "understood-")
ELEMENT_ID = re.compile(r'\bid="([^"]+)"')


class ContentError(Exception):
    """One or more problems in content files; str() lists them as `path:line: message`."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class LoadStats:
    topic: str
    sections: int = 0
    questions: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    def summary(self) -> str:
        line = f"{self.topic}: {self.sections} sections, {self.questions} questions "
        line += f"({self.created} created, {self.updated} updated, {self.unchanged} unchanged"
        if self.deleted:
            line += f", {self.deleted} deleted"
        return line + ")"


def configured_lab_presets() -> Collection[str]:
    """The Lab preset names `lab:` links may name. The project wires them in (settings), so Study
    never imports the Lab."""
    return import_string(settings.STUDY_LAB_PRESETS)


def _curveballs(source: SourceFile, lab_presets: Collection[str], problems: _Problems) -> list[dict]:
    """The mock interview's curveballs: each a question and the Lab preset (or two) that shows it."""
    raw = source.meta.get("curveballs") or []
    line = source.key_line("curveballs")
    if not isinstance(raw, list):
        problems.add(source.path, line, "curveballs must be a list")
        return []
    balls = []
    for ball in raw:
        fields = (
            {key: str(ball.get(key) or "").strip() for key in ("text", "preset", "label", "also")}
            if isinstance(ball, dict)
            else {}
        )
        if not fields.get("text") or not fields.get("label"):
            problems.add(source.path, line, "each curveball needs text, preset and label")
            continue
        for preset in filter(None, (fields["preset"], fields["also"])):
            if preset not in lab_presets:
                problems.add(source.path, line, f"curveball names unknown Lab preset {preset!r}")
        balls.append({key: value for key, value in fields.items() if value})
    return balls


@dataclass
class _TopicPlan:
    slug: str
    directory: Path
    lab_presets: Collection[str]
    source: SourceFile
    fields: dict
    sections: dict[str, tuple[SourceFile, dict]] = field(default_factory=dict)
    questions: dict[str, tuple[SourceFile, dict]] = field(default_factory=dict)
    anchors: dict[str, set[str]] = field(default_factory=dict)  # section slug -> heading ids


def _plan_topic(directory: Path, lab_presets: Collection[str], problems: _Problems) -> _TopicPlan | None:
    source = parse_file(directory / "topic.md", problems)
    if source is None:
        return None
    slug = _slug(source, directory.name, problems)
    plan = _TopicPlan(
        slug=slug,
        directory=directory,
        lab_presets=lab_presets,
        source=source,
        fields={
            "title": _text(source, "title", problems),
            "summary": _text(source, "summary", problems, required=False),
            "intro_md": source.body,
            "order": _order(source, 0, problems),
            "curveballs": _curveballs(source, lab_presets, problems),
        },
    )

    section_paths: dict[str, Path] = {}
    for index, path in enumerate(sorted((directory / "sections").glob("*.md")), start=1):
        section = parse_file(path, problems)
        if section is None:
            continue
        prefix = re.match(r"^(\d+)-(.*)$", path.stem)
        default_slug = prefix[2] if prefix else path.stem
        default_order = int(prefix[1]) if prefix else index
        section_slug = _slug(section, default_slug, problems)
        if section_slug in RESERVED_SECTION_SLUGS:
            problems.add(path, section.key_line("slug"), f"section slug {section_slug!r} is a reserved URL segment")
            continue
        if section_slug in section_paths:
            problems.add(
                path,
                section.key_line("slug"),
                f"duplicate section slug {section_slug!r} (also in {section_paths[section_slug].name})",
            )
            continue
        section_paths[section_slug] = path
        plan.sections[section_slug] = (
            section,
            {
                "title": _text(section, "title", problems),
                "order": _order(section, default_order, problems),
                "body_md": section.body,
            },
        )

    question_paths: dict[str, Path] = {}
    for index, path in enumerate(sorted((directory / "questions").glob("*.md")), start=1):
        question = parse_file(path, problems)
        if question is None:
            continue
        question_slug = _slug(question, path.stem, problems)
        if question_slug in question_paths:
            problems.add(
                path,
                question.key_line("slug"),
                f"duplicate question slug {question_slug!r} (also in {question_paths[question_slug].name})",
            )
            continue
        question_paths[question_slug] = path
        plan.questions[question_slug] = (question, _question_fields(question, index, plan, problems))
    return plan


def _question_fields(source: SourceFile, index: int, plan: _TopicPlan, problems: _Problems) -> dict:
    meta = source.meta
    level = _text(source, "level", problems)
    if level and level not in LEVELS:
        problems.add(source.path, source.key_line("level"), f"unknown level {level!r} (use one of {sorted(LEVELS)})")
    kind = _text(source, "kind", problems, required=False) or Question.Kind.CONCEPT
    if kind not in KINDS:
        problems.add(source.path, source.key_line("kind"), f"unknown kind {kind!r} (use one of {sorted(KINDS)})")
    section = _text(source, "section", problems)
    if section and section not in plan.sections:
        problems.add(source.path, source.key_line("section"), f"unknown section slug {section!r}")
    preset = _text(source, "preset", problems, required=False)
    if preset and preset not in plan.lab_presets:
        known = sorted(plan.lab_presets)
        problems.add(source.path, source.key_line("preset"), f"unknown preset {preset!r} (known: {known})")

    key_points = meta.get("key_points") or []
    if not isinstance(key_points, list) or not 4 <= len(key_points) <= 8:
        count = len(key_points) if isinstance(key_points, list) else "not a list"
        problems.add(source.path, source.key_line("key_points"), f"key_points needs 4-8 items (found {count})")
        key_points = []
    cleaned_points = []
    for point in key_points:
        label = point.get("label") if isinstance(point, dict) else None
        phrases = point.get("phrases") if isinstance(point, dict) else None
        if (
            not isinstance(label, str)
            or not label.strip()
            or not isinstance(phrases, list)
            or not phrases
            or not all(isinstance(p, str) and p.strip() for p in phrases)
        ):
            problems.add(
                source.path,
                source.key_line("key_points"),
                "each key point needs a label and a non-empty list of phrases",
            )
            continue
        cleaned_points.append({"label": label.strip(), "phrases": [p.strip() for p in phrases]})

    followups = meta.get("followups") or []
    if not isinstance(followups, list) or not 1 <= len(followups) <= 3:
        count = len(followups) if isinstance(followups, list) else "not a list"
        problems.add(source.path, source.key_line("followups"), f"followups needs 1-3 items (found {count})")
        followups = []
    tree = _followup_tree(followups, source, problems)

    return {
        "prompt": _text(source, "prompt", problems),
        "level": level,
        "kind": kind,
        "section_slug": section,
        "heading": _text(source, "heading", problems, required=False).removeprefix("#"),
        "preset": preset,
        "key_points": cleaned_points,
        "followups": [item["ask"] for item in tree],
        "followup_tree": tree,
        "staff_md": _text(source, "staff", problems, required=False),
        "answer_md": source.body,
        "order": _order(source, index, problems),
    }


def _followup_tree(raw: list, source: SourceFile, problems: _Problems, depth: int = 1) -> list[dict]:
    """Follow-ups as {ask, answer (Markdown), then: [...]}; a bare string is an ask with no model answer yet.
    `then` chains the interviewer's next push on the same choice, at most MAX_FOLLOWUP_DEPTH levels deep."""
    line = source.key_line("followups")
    tree = []
    for item in raw:
        if isinstance(item, str) and item.strip():
            tree.append({"ask": item.strip(), "answer": "", "then": []})
            continue
        ask = item.get("ask") if isinstance(item, dict) else None
        answer = item.get("answer", "") if isinstance(item, dict) else None
        then = (item.get("then") or []) if isinstance(item, dict) else []
        unknown = set(item) - {"ask", "answer", "then"} if isinstance(item, dict) else set()
        if not isinstance(ask, str) or not ask.strip() or not isinstance(answer, str) or unknown:
            problems.add(source.path, line, "each followup must be text or {ask, answer, then?} with text values")
            continue
        if not isinstance(then, list) or len(then) > 3:
            problems.add(source.path, line, "a followup's `then` must be a list of at most 3 followups")
            then = []
        if then and depth >= MAX_FOLLOWUP_DEPTH:
            problems.add(source.path, line, f"followups chain at most {MAX_FOLLOWUP_DEPTH} levels deep")
            then = []
        children = _followup_tree(then, source, problems, depth + 1)
        tree.append({"ask": ask.strip(), "answer": answer.strip(), "then": children})
    return tree


def _render_followups(tree: list[dict], source: SourceFile, resolve, problems: _Problems) -> list[dict]:
    rendered = []
    for item in tree:
        answer = _render(source, item["answer"], resolve, problems) if item["answer"] else None
        rendered.append(
            {
                "ask": item["ask"],
                "answer_html": answer.html if answer else "",
                "then": _render_followups(item["then"], source, resolve, problems),
            }
        )
    return rendered


def _resolver(plan: _TopicPlan):
    def resolve(scheme: str, target: str) -> ResolvedLink:
        href = f"{scheme}:{target}"
        if scheme == "lab":
            if target not in plan.lab_presets:
                raise LinkError(href, f"unknown Lab preset {target!r} in link {href!r}")
            return ResolvedLink(lab_link(target), "lab-link")
        if scheme == "question":
            if target not in plan.questions:
                raise LinkError(href, f"unknown question {target!r} in link {href!r}")
            return ResolvedLink(reverse("drills:question", args=[plan.slug, target]), "drill-link")
        section, _, anchor = target.partition("#")
        if section not in plan.sections:
            raise LinkError(href, f"unknown section {section!r} in link {href!r}")
        if anchor and anchor not in plan.anchors.get(section, set()):
            raise LinkError(href, f"section {section!r} has no heading with anchor {anchor!r} (link {href!r})")
        chapter_url = reverse("topics:section", args=[plan.slug, section])
        return ResolvedLink(f"{chapter_url}#{anchor}" if anchor else chapter_url, "section-link")

    return resolve


def _render(source: SourceFile, text: str, resolve, problems: _Problems) -> Rendered | None:
    try:
        return render_markdown(text, resolve=resolve)
    except LinkErrors as errors:
        for error in errors.errors:
            problems.add(source.path, source.line_of(f"({error.href}", error.href), str(error))
        return None


def _heading_line(source: SourceFile, title: str) -> int:
    for number, line in enumerate(source.lines, start=1):
        if number >= source.body_line and line.lstrip().startswith("#") and title in line:
            return number
    return source.body_line


def _render_topic(plan: _TopicPlan, problems: _Problems) -> dict[str, Rendered]:
    """Render every body; section headings first, so links can be checked against their anchors."""
    owner: dict[str, str] = {}
    # The overview shows the intro and the diagram beside the forwarding links: their ids count as taken.
    for entry in render_markdown(plan.source.body).toc:
        owner[entry["id"]] = "the topic's introduction"
    diagram = plan.directory / DIAGRAM_FILE
    if diagram.is_file():
        for element_id in ELEMENT_ID.findall(diagram.read_text(encoding="utf-8")):
            owner[element_id] = "the diagram"
    for slug, (source, _fields) in sorted(plan.sections.items(), key=lambda item: item[1][1]["order"]):
        clash = "the page" if _page_id(slug) else owner.get(slug)
        if clash:
            problems.add(
                source.path, source.key_line("slug"), f"section slug {slug!r} clashes with an id used by {clash}"
            )
        owner.setdefault(slug, f"section {slug!r}")
    for slug, (source, _fields) in sorted(plan.sections.items(), key=lambda item: item[1][1]["order"]):
        toc = render_markdown(source.body).toc
        plan.anchors[slug] = {entry["id"] for entry in toc}
        for entry in toc:
            # Each chapter has its own page, but the overview keeps every old "#id" of the single page it
            # replaced as a forwarding link, so a heading id must still be unique across the topic.
            clash = "the page" if _page_id(entry["id"]) else owner.get(entry["id"])
            if clash:
                problems.add(
                    source.path,
                    _heading_line(source, entry["title"]),
                    f"heading anchor #{entry['id']} clashes with an id already used by {clash}",
                )
            owner.setdefault(entry["id"], f"section {slug!r}")

    resolve = _resolver(plan)
    rendered: dict[str, Rendered] = {}
    intro = _render(plan.source, plan.source.body, resolve, problems)
    if intro is not None:
        rendered["topic"] = intro
    for slug, (source, _fields) in plan.sections.items():
        result = _render(source, source.body, resolve, problems)
        if result is not None:
            rendered[f"section:{slug}"] = result
    for slug, (source, fields) in plan.questions.items():
        _check_heading(source, fields, plan, problems)
        result = _render(source, source.body, resolve, problems)
        if result is not None:
            rendered[f"question:{slug}"] = result
        fields["followup_tree"] = _render_followups(fields["followup_tree"], source, resolve, problems)
        staff = _render(source, fields.pop("staff_md"), resolve, problems) if fields.get("staff_md") else None
        fields.pop("staff_md", None)
        fields["staff_html"] = staff.html if staff else ""
    rendered["diagram"] = _render_diagram(plan.directory / DIAGRAM_FILE, resolve, problems)
    return rendered


def _check_heading(source: SourceFile, fields: dict, plan: _TopicPlan, problems: _Problems) -> None:
    """A question's `heading:` is where its Study link lands: the anchor of a heading in its own section."""
    heading, section = fields["heading"], fields["section_slug"]
    if not heading or section not in plan.anchors:
        return
    anchors = plan.anchors[section]
    if heading not in anchors:
        close = difflib.get_close_matches(heading, sorted(anchors), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (its headings: {', '.join(sorted(anchors))})"
        problems.add(source.path, source.key_line("heading"), f"section {section!r} has no heading {heading!r}{hint}")


def _page_id(element_id: str) -> bool:
    return element_id in PAGE_IDS or element_id.startswith(PAGE_ID_PREFIXES)


def _content_version(plan: _TopicPlan, rendered: dict[str, Rendered]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(plan.fields, sort_keys=True, default=str).encode())
    for key in sorted(rendered):
        digest.update(key.encode() + b"\0" + rendered[key].html.encode() + b"\0")
        digest.update(json.dumps(getattr(rendered[key], "blocks", None), sort_keys=True, default=str).encode())
    for group in (plan.sections, plan.questions):
        for slug in sorted(group):
            digest.update(json.dumps(group[slug][1], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _render_diagram(path: Path, resolve, problems: _Problems) -> Rendered:
    """The topic's diagram, with its special links resolved and checked like the Markdown's."""
    if not path.is_file():
        return Rendered(html="", text="", toc=[])
    text = path.read_text(encoding="utf-8")

    def link(match: re.Match) -> str:
        try:
            return f'href="{resolve(match[1], match[2]).url}"'
        except LinkError as error:
            problems.add(path, text.count("\n", 0, match.start()) + 1, str(error))
            return match[0]

    return Rendered(html=DIAGRAM_LINK.sub(link, text), text="", toc=[])


def _upsert(model, lookup: dict, values: dict, stats: LoadStats):
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        stats.created += 1
        return model.objects.create(**lookup, **values)
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    if changed:
        for name in changed:
            setattr(obj, name, values[name])
        obj.save(update_fields=changed)
        stats.updated += 1
    else:
        stats.unchanged += 1
    return obj


def content_load(*, path: Path | str | None = None, lab_presets: Collection[str] | None = None) -> list[LoadStats]:
    """Validate then load every topic under `path`; raise ContentError listing every problem."""
    root = Path(path) if path else DEFAULT_CONTENT_DIR
    lab_presets = configured_lab_presets() if lab_presets is None else lab_presets
    if not root.is_dir():
        raise ContentError([f"{root}: content directory not found"])
    key = _files_digest(root, lab_presets)
    plans, rendered = _VALIDATED.get(key) or _validate(root, lab_presets)
    _VALIDATED[key] = plans, rendered

    all_stats: list[LoadStats] = []
    with transaction.atomic():
        Topic.objects.exclude(slug__in=[plan.slug for plan in plans]).delete()
        for plan in plans:
            all_stats.append(_write_topic(plan, rendered[plan.slug]))
    shared_pages_clear()
    return all_stats


# Parsing, checking and rendering ~250 KB of Markdown takes about a second; writing the rows takes a
# fraction of that. Content that validated once is kept by the digest of its files, so loading the same
# files again (a second `load_content`, a test that flushed the database) only writes rows.
_VALIDATED: dict[str, tuple[list[_TopicPlan], dict[str, dict[str, Rendered]]]] = {}


def _files_digest(root: Path, lab_presets: Collection[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(root.resolve()).encode() + b"\0" + json.dumps(sorted(lab_presets)).encode())
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _validate(root: Path, lab_presets: Collection[str]) -> tuple[list[_TopicPlan], dict[str, dict[str, Rendered]]]:
    """Parse, check and render every topic under root, or raise ContentError listing every problem."""
    problems = _Problems(root=root)
    plans: list[_TopicPlan] = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and (p / "topic.md").is_file()):
        plan = _plan_topic(directory, lab_presets, problems)
        if plan is not None:
            plans.append(plan)
    if not plans and not problems.items:
        problems.items.append(f"{root}: no topics found (expected <topic>/topic.md)")
    slugs = [plan.slug for plan in plans]
    for plan in plans:
        if slugs.count(plan.slug) > 1:
            problems.add(plan.source.path, plan.source.key_line("slug"), f"duplicate topic slug {plan.slug!r}")
    rendered = {plan.slug: _render_topic(plan, problems) for plan in plans}
    if problems.items:
        raise ContentError(problems.items)
    return plans, rendered


def _write_topic(plan: _TopicPlan, rendered: dict[str, Rendered]) -> LoadStats:
    stats = LoadStats(topic=plan.slug, sections=len(plan.sections), questions=len(plan.questions))
    topic_stats = LoadStats(topic=plan.slug)  # the topic row itself is not counted in the summary
    values = {
        **plan.fields,
        "intro_html": rendered["topic"].html,
        "diagram_html": rendered["diagram"].html,
        "content_version": _content_version(plan, rendered),
    }
    topic = _upsert(Topic, {"slug": plan.slug}, values, topic_stats)

    stale_questions = topic.questions.exclude(slug__in=list(plan.questions))
    stale_sections = topic.sections.exclude(slug__in=list(plan.sections))
    stats.deleted += stale_questions.count() + stale_sections.count()
    stale_questions.delete()
    stale_sections.delete()

    sections: dict[str, Section] = {}
    for slug, (_source, fields) in plan.sections.items():
        result = rendered[f"section:{slug}"]
        values = {
            **fields,
            "body_html": result.html,
            "body_text": result.text,
            "toc": result.toc,
            "blocks": result.blocks,
        }
        sections[slug] = _upsert(Section, {"topic": topic, "slug": slug}, values, stats)

    for slug, (_source, fields) in plan.questions.items():
        values = {key: value for key, value in fields.items() if key != "section_slug"}
        values["section_id"] = sections[fields["section_slug"]].pk
        values["answer_html"] = rendered[f"question:{slug}"].html
        _upsert(Question, {"topic": topic, "slug": slug}, values, stats)
    return stats
