"""Site search: ranks paragraphs, not pages, so a result lands on the passage that teaches the words.

Every section is split at load time into blocks (paragraphs, list items, tables; see
topics/markdown.py) with stable ids. The index is built in Python from those blocks, the topic
intros and the drill questions, once per content version, and kept in memory: the content is a
few hundred kilobytes (about 1,500 blocks), it indexes in well under a second, and one ranking
runs the same on SQLite and PostgreSQL (FTS5 and tsvector rank differently, and neither has
phrase proximity we could test once for both).

Ranking: BM25 over each block's words, a light stemmer so "retries" finds "retry", a bonus for the
block's heading and chapter title, a bonus that grows as the query words stand closer together
(side by side is best), and a few domain synonyms ("bounded" ~ "limit"), each worth less than the
word itself, and a few everyday phrases ("charge twice") are searched as the site's terms (PHRASE_SYNONYMS).

Then the shape of the block, because a term's teaching passage looks different from a mention of it:
teaching text defines the term in bold ("**At-least-once.** The consumer ...") or names it in its first
words, and a section opens with what its heading is about, so a heading's bonus goes mostly to its
first block (and most of all to an opening paragraph). A block that opens with a question ("How many
workers do you need?" ...) is an interview prompt pointing at the answer, link text describes another
passage, a chapter made of program listings comments on code, and a diagram's title and description
retell the paragraphs beside it: each keeps a share of its score. A diagram does not count towards its
chapter's words either, which its prose already holds. No rule names a term or a chapter: the terms of
the brief and the passages that teach them are a test (tests/topics/test_search.py), not a table here.
"""

import math
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlencode

from django.conf import settings
from django.utils.html import escape
from django.utils.module_loading import import_string
from django.utils.safestring import SafeString, mark_safe

from prepsite.links import lab_link
from topics.markdown import html_to_text
from topics.models import Question, Section, Topic
from topics.text import query_terms, tokenize

MAX_RESULTS = 30
SNIPPET_BEFORE = 70
SNIPPET_AFTER = 170

# BM25's usual constants; then how much a heading, the chapter title, a synonym and closeness are worth.
K1, B = 1.2, 0.75
# Blocks shorter than this share of the average count as this long: BM25 otherwise ranks a one-line
# signpost ("Try it in the Lab: retries with backoff and jitter") above the paragraph that explains it.
SHORT_BLOCK = 0.8
# A heading's words count for every block under it, and more for its first blocks, which say what it is about:
# block n gets HEADING_WEIGHT + OPENER_WEIGHT / n. A word found only in a heading or title counts as
# TITLE_ONLY_SHARE of a word in the block when blocks are compared on how many query words they hold.
HEADING_WEIGHT = 0.5
OPENER_WEIGHT = 2.0
TITLE_ONLY_SHARE = 0.75
CHAPTER_WEIGHT = 0.3
PROMPT_WEIGHT = 0.8
SYNONYM_WEIGHT = 0.7
PROXIMITY_WEIGHT = 1.5
QUESTION_WEIGHT = 0.7
# A Lab experiment is found by its title and its concept (the chapter that explains it), and ranks below the
# passage that teaches the same words: it shows the idea, the chapter explains it.
LAB_WEIGHT = 0.6
# The query words as a bold phrase of the block ("**At-least-once.** The consumer ..."): the way our chapters
# define a term. Worth its share of the phrase, so a bold sentence that merely holds a word is worth less.
DEFINITION_WEIGHT = 2.0
# Words inside a link's text describe the passage the link leads to, not this one.
LINK_TEXT_WEIGHT = 0.3
# A block keeps a share of its score for what it is: a diagram's description retells the prose beside it; a
# block that opens with a question is an interview prompt pointing at the answer; a block made of link text
# ("Try it in the Lab: ...") is a signpost, and it loses LINK_SHARE_WEIGHT times its share of link text; a
# chapter made of program listings comments on code, and its blocks lose CODE_SHARE_WEIGHT times that share.
FIGURE_WEIGHT = 0.6
QUESTION_LEAD_WEIGHT = 0.5
LINK_SHARE_WEIGHT = 0.7
CODE_SHARE_WEIGHT = 1.0
FENCED_CODE = re.compile(r"^(`{3,}|~{3,}).*?^\1", re.MULTILINE | re.DOTALL)
QUESTION_LEAD = re.compile(r"\A[^.!?]{0,160}\?")
# Teaching text introduces a term at the start of its paragraph or list item ("**Concurrency limits per
# dependency.** A semaphore of ..."); a mention in passing sits mid-sentence. Worth most for the first word,
# nothing from the LEAD_TOKENS-th on, and more in a section's opening paragraph, which says what it is about.
LEAD_TOKENS = 8
LEAD_WEIGHT = 0.5
OPENER_LEAD_WEIGHT = 2.0
# A passage is scored with a share of its whole chapter's score: the words in a chapter about them.
CHAPTER_SCORE_WEIGHT = 0.25  # a drill quotes the chapters; the chapter's own passage should come first

# Words interviewers and the chapters use for one idea; applied to query words, after stemming.
SYNONYMS = {
    "bound": ("limit", "cap"),
    "limit": ("cap", "bound"),
    "cap": ("limit",),
    "redeliver": ("redrive",),
    "idempotency": ("idempotent",),
    "idempotent": ("idempotency",),
    "dedup": ("deduplicat",),
    "deduplicat": ("dedup",),
}
# How people ask versus the words the chapters teach with: a query phrase is searched as the site's term.
PHRASE_SYNONYMS = {
    "charge twice": "idempotency duplicate charge",
    "charged twice": "idempotency duplicate charge",
    "double charge": "idempotency duplicate charge",
    "processed twice": "idempotent consumer duplicate",
    "replay the dlq": "redrive dead letter",
    # The chapters teach it as "Depth or lag" and "offset lag per partition"; "consumer" on its own pulls in
    # Kafka's replication settings (`replica.lag.time.max.ms`), which are about followers, not consumers.
    "consumer lag": "lag depth",
}


class LabPreset(Protocol):
    """What search reads of a Lab preset (settings.STUDY_LAB_PRESETS maps names to them; Study never imports
    the Lab, the project says where the presets are)."""

    title: str
    setup: str  # the givens in one line (never the result: that is the Lab's to show after a run)
    section: str  # the slug of the chapter that explains it


def lab_presets() -> Mapping[str, LabPreset]:
    return import_string(settings.STUDY_LAB_PRESETS)


def expand_query(query: str) -> str:
    """The query with its everyday phrases replaced by the site's terms (PHRASE_SYNONYMS)."""
    lowered = " ".join(query.lower().split())
    for phrase, terms in PHRASE_SYNONYMS.items():
        lowered = re.sub(rf"\b{re.escape(phrase)}\b", terms, lowered)
    return lowered


@dataclass
class Doc:
    kind: str  # "topic" | "section" | "question" | "lab"
    url: str
    title: str
    context: str
    text: str
    group: str  # results show the best block of each group (a chapter, a question, a topic)
    order: int
    heading: frozenset = frozenset()
    heading_tokens: list = field(default_factory=list)  # [(stem, start, end)] of the heading, for phrase matches
    chapter: frozenset = frozenset()
    block_kind: str = ""  # a section block's kind (topics/markdown.py): "p", "li", "row", "link", "figure", ...
    position: int = 1  # the block's place under its heading, from 1
    strong: tuple = ()  # each bold phrase's stems
    question: bool = False  # the block opens with a question
    link_share: float = 0.0  # share of the block's text that is link text
    code_share: float = 0.0  # share of the block's chapter that is fenced code
    tokens: list = field(default_factory=list)  # [(stem, start, end)]
    counts: Counter = field(default_factory=Counter)


@dataclass
class Index:
    docs: list[Doc]
    postings: dict[str, list[int]]
    idf: dict[str, float]
    average_length: float
    groups: dict[str, Counter] = field(default_factory=dict)  # a chapter's (or question's) word counts
    group_lengths: dict[str, int] = field(default_factory=dict)


@dataclass
class Hit:
    kind: str
    title: str
    url: str
    context: str
    score: float
    block_id: str
    text: str
    title_html: SafeString
    snippet: SafeString


def _doc(*, heading_text: str = "", links: list[str] = (), **fields) -> Doc:
    doc = Doc(**fields)
    doc.tokens = tokenize(doc.text)
    doc.heading_tokens = tokenize(heading_text)
    doc.heading = frozenset(token for token, _s, _e in doc.heading_tokens)
    spans, start = [], 0
    for link in links:  # each link's text, found in order in the block's text
        found = doc.text.find(link, start)
        if found >= 0:
            spans.append((found, found + len(link)))
            start = found + len(link)
    doc.link_share = sum(right - left for left, right in spans) / max(len(doc.text), 1)
    doc.counts = Counter()
    for token, token_start, _e in doc.tokens:
        linked = any(left <= token_start < right for left, right in spans)
        doc.counts[token] += LINK_TEXT_WEIGHT if linked else 1
    doc.question = bool(QUESTION_LEAD.match(doc.text)) and doc.kind == "section"
    return doc


def _searched_by_title(**fields) -> Doc:
    """A document whose text is shown but not searched: only its heading and chapter words find it."""
    doc = _doc(**fields)
    doc.tokens, doc.counts = [], Counter()
    return doc


def _position(block_id: str) -> int:
    """n of a "<heading>--<n>" block id; a figure (its own id) counts as a later block."""
    number = block_id.rpartition("--")[2]
    return int(number) if number.isdigit() else 2


def _code_share(markdown: str) -> float:
    return sum(len(match[0]) for match in FENCED_CODE.finditer(markdown)) / max(len(markdown), 1)


def _stems(text: str) -> frozenset:
    return frozenset(token for token, _s, _e in tokenize(text))


def _documents() -> list[Doc]:
    docs: list[Doc] = []
    for topic in Topic.objects.published():
        docs.append(
            _doc(
                kind="topic",
                url=topic.get_absolute_url(),
                title=topic.title,
                context="Topic",
                text=f"{topic.summary} {html_to_text(topic.intro_html)}".strip(),
                group=f"topic:{topic.pk}",
                order=len(docs),
                heading_text=topic.title,
            )
        )
    sections = Section.objects.select_related("topic").order_by("topic__order", "topic__title", "order")
    concepts: dict[str, str] = {}
    for section in sections.only("slug", "title", "toc", "blocks", "body_md", "topic__slug", "topic__title"):
        concepts.setdefault(section.slug, section.title)
        chapter = _stems(section.title)
        code_share = _code_share(section.body_md)
        for block in section.blocks:
            heading = section.heading_title(block["heading"])
            docs.append(
                _doc(
                    kind="section",
                    url=f"{section.get_absolute_url()}#{block['id']}",
                    title=heading or section.title,
                    context=f"{section.topic.title} › {section.title}",
                    text=block["text"],
                    group=f"section:{section.pk}",
                    order=len(docs),
                    heading_text=heading,
                    chapter=chapter,
                    block_kind=block.get("kind", "p"),
                    position=_position(block["id"]),
                    strong=tuple(tuple(token for token, _s, _e in tokenize(bold)) for bold in block.get("strong", ())),
                    links=block.get("links", ()),
                    code_share=code_share,
                )
            )
    for question in Question.objects.select_related("topic", "section").in_order():
        docs.append(
            _doc(
                kind="question",
                url=question.get_absolute_url(),
                title=question.prompt,
                context=f"Drill · {question.get_level_display()} · {question.section.title}",
                text=html_to_text(question.answer_html),
                group=f"question:{question.pk}",
                order=len(docs),
                heading_text=question.prompt,
            )
        )
    for name, preset in lab_presets().items():
        concept = concepts.get(preset.section, "")
        # Found by its title and its concept only: its setup is shown as the snippet, not searched.
        docs.append(
            _searched_by_title(
                kind="lab",
                url=lab_link(name),
                title=preset.title,
                context=f"Lab experiment · {concept}" if concept else "Lab experiment",
                text=preset.setup,
                group=f"lab:{name}",
                order=len(docs),
                heading_text=preset.title,
                chapter=_stems(concept),
            )
        )
    return docs


def build_index(docs: list[Doc]) -> Index:
    postings: dict[str, list[int]] = defaultdict(list)
    for number, doc in enumerate(docs):
        for token in set(doc.counts) | doc.heading | doc.chapter:
            postings[token].append(number)
    total = max(len(docs), 1)
    idf = {token: math.log(1 + (total - len(found) + 0.5) / (len(found) + 0.5)) for token, found in postings.items()}
    average = sum(len(doc.tokens) for doc in docs) / total
    groups: dict[str, Counter] = defaultdict(Counter)
    lengths: Counter = Counter()
    for doc in docs:
        if doc.block_kind == "figure":
            continue  # a diagram retells its chapter's prose: counting it again would inflate the chapter's words
        groups[doc.group].update(doc.counts)
        lengths[doc.group] += len(doc.tokens)
    return Index(
        docs=docs,
        postings=dict(postings),
        idf=idf,
        average_length=max(average, 1.0),
        groups=dict(groups),
        group_lengths=dict(lengths),
    )


_cache: dict = {}
_cache_lock = threading.Lock()


def current_index() -> Index:
    """The index for the content now in the database, rebuilt only when a load changed it."""
    version = tuple(Topic.objects.order_by("pk").values_list("pk", "content_version"))
    with _cache_lock:
        if _cache.get("version") != version:
            _cache["index"] = build_index(_documents())
            _cache["version"] = version
        return _cache["index"]


def _groups(terms: list[str]) -> list[dict[str, float]]:
    """Each query word with its synonyms, as {stem: weight}."""
    groups = []
    for term in terms:
        group = {term: 1.0}
        for synonym in SYNONYMS.get(term, ()):
            group.setdefault(synonym, SYNONYM_WEIGHT)
        groups.append(group)
    return groups


def _proximity(doc: Doc, groups: list[dict[str, float]], tokens: list | None = None) -> float:
    """1 when the query words stand side by side in the block (or tokens), falling as the tightest window widens."""
    if len(groups) < 2:
        return 0.0
    numbers = defaultdict(list)
    for number, group in enumerate(groups):
        for token in group:
            numbers[token].append(number)
    hits = [
        (position, number)
        for position, (token, _s, _e) in enumerate(doc.tokens if tokens is None else tokens)
        if token in numbers
        for number in numbers[token]
    ]
    best, seen = None, {}
    left = 0
    for position, number in hits:
        seen[number] = seen.get(number, 0) + 1
        while len(seen) == len(groups):
            start = hits[left][0]
            width = position - start + 1
            best = width if best is None else min(best, width)
            first = hits[left][1]
            seen[first] -= 1
            if not seen[first]:
                del seen[first]
            left += 1
    if best is None:
        return 0.0
    return 1.0 / (1 + best - len(groups))


def _lead(doc: Doc, groups: list[dict[str, float]]) -> float:
    """How early the query words come in the block: 1 when they open it, 0 from the LEAD_TOKENS-th word on."""
    first = {}
    for position, (token, _s, _e) in enumerate(doc.tokens[:LEAD_TOKENS]):
        first.setdefault(token, position)
    total = 0.0
    for group in groups:
        position = min((first[token] for token in group if token in first), default=LEAD_TOKENS)
        total += 1 - min(position, LEAD_TOKENS) / LEAD_TOKENS
    return total / len(groups)


def _chapter_score(index: Index, doc: Doc, groups: list[dict[str, float]], cache: dict) -> float:
    """BM25 of the query against the passage's whole chapter, lengths compared between chapters."""
    if doc.group not in cache:
        counts = index.groups[doc.group]
        average = sum(index.group_lengths.values()) / max(len(index.group_lengths), 1)
        norm = K1 * (1 - B + B * index.group_lengths[doc.group] / max(average, 1.0))
        total = 0.0
        for group in groups:
            total += max(
                weight * index.idf.get(token, 0.0) * counts[token] * (K1 + 1) / (counts[token] + norm)
                for token, weight in group.items()
            )
        cache[doc.group] = total
    return cache[doc.group]


def _definition(doc: Doc, groups: list[dict[str, float]]) -> float:
    """How well one bold phrase of the block is the query: the share of the query words it holds, times the
    share of its words that are query words ("**At-least-once.**" is 1, "**Little's law also reads backwards.**"
    0.4 for "Little's law")."""
    stems = {token for group in groups for token in group}
    best = 0.0
    for phrase in doc.strong:
        if phrase:
            covered = sum(1 for group in groups if group.keys() & set(phrase))
            best = max(best, covered / len(groups) * sum(1 for token in phrase if token in stems) / len(phrase))
    return best


def _parts(index: Index, doc: Doc, groups: list[dict[str, float]], chapters: dict) -> dict[str, float]:
    """The pieces of a block's score (see _score), named so a ranking can be explained."""
    length = max(len(doc.tokens), SHORT_BLOCK * index.average_length)
    length_norm = K1 * (1 - B + B * length / index.average_length)
    heading_weight = HEADING_WEIGHT + OPENER_WEIGHT / doc.position if doc.kind == "section" else PROMPT_WEIGHT
    words, matched, coverage, idfs = 0.0, 0, 0.0, []
    for group in groups:
        best, in_text = 0.0, False
        for token, weight in group.items():
            idf = index.idf.get(token, 0.0)
            tf = doc.counts.get(token, 0)
            value = idf * tf * (K1 + 1) / (tf + length_norm) if tf else 0.0
            value += heading_weight * idf if token in doc.heading else 0.0
            value += CHAPTER_WEIGHT * idf if token in doc.chapter else 0.0
            best = max(best, weight * value)
            in_text = in_text or bool(tf)
        if best:
            matched += 1
            coverage += 1.0 if in_text else TITLE_ONLY_SHARE
            idfs.append(max(index.idf.get(token, 0.0) for token in group))
        words += best
    if not matched:
        return {"matched": 0}
    mean_idf = sum(idfs) / len(idfs)
    # The query as a phrase in the heading: the section is about it, most of all its first blocks.
    heading_phrase = _proximity(doc, groups, doc.heading_tokens) * heading_weight / (HEADING_WEIGHT + OPENER_WEIGHT)
    opening = doc.kind == "section" and doc.position == 1 and doc.block_kind == "p"  # a section's opening paragraph
    lead_weight = LEAD_WEIGHT + (OPENER_LEAD_WEIGHT if opening else 0.0)
    shape = {"question": QUESTION_WEIGHT, "lab": LAB_WEIGHT}.get(doc.kind, 1.0)
    shape *= FIGURE_WEIGHT if doc.block_kind == "figure" else 1.0
    shape *= QUESTION_LEAD_WEIGHT if doc.question else 1.0
    shape *= (1 - LINK_SHARE_WEIGHT * doc.link_share) * (1 - CODE_SHARE_WEIGHT * doc.code_share)
    return {
        "matched": matched,
        "words": words,
        "proximity": PROXIMITY_WEIGHT * mean_idf * max(_proximity(doc, groups), heading_phrase),
        "lead": lead_weight * mean_idf * _lead(doc, groups),
        "definition": DEFINITION_WEIGHT * mean_idf * _definition(doc, groups),
        "chapter": CHAPTER_SCORE_WEIGHT * _chapter_score(index, doc, groups, chapters),
        "coverage": coverage / len(groups),  # a block with every word beats one that repeats a single word
        "shape": shape,
    }


def _score(index: Index, doc: Doc, groups: list[dict[str, float]], chapters: dict) -> tuple[float, int]:
    parts = _parts(index, doc, groups, chapters)
    if not parts["matched"]:
        return 0.0, 0
    evidence = parts["words"] + parts["proximity"] + parts["lead"] + parts["definition"] + parts["chapter"]
    return evidence * parts["coverage"] * parts["shape"], parts["matched"]


def highlight(text: str, patterns: list[re.Pattern]) -> SafeString:
    """Escape text, then wrap each match in <mark>: matches are found on the raw text, each piece escaped."""
    spans = sorted((m.start(), m.end()) for p in patterns for m in p.finditer(text))
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, position = [], 0
    for start, end in merged:
        out.append(escape(text[position:start]))
        out.append(f"<mark>{escape(text[start:end])}</mark>")
        position = end
    out.append(escape(text[position:]))
    return mark_safe("".join(out))  # noqa: S308 (every piece above is escaped)


def snippet(text: str, patterns: list[re.Pattern]) -> SafeString:
    first = min((m.start() for p in patterns if (m := p.search(text))), default=None)
    if first is None:
        short = text if len(text) <= SNIPPET_BEFORE + SNIPPET_AFTER else text[: SNIPPET_BEFORE + SNIPPET_AFTER]
        return highlight(short if short == text else short.rsplit(" ", 1)[0] + " …", patterns)
    start = max(0, first - SNIPPET_BEFORE)
    end = min(len(text), first + SNIPPET_AFTER)
    if start > 0:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < first else start
    if end < len(text):
        space = text.rfind(" ", first, end)
        end = space if space > first else end
    piece = text[start:end]
    prefix = "… " if start > 0 else ""
    suffix = " …" if end < len(text) else ""
    return mark_safe(f"{prefix}{highlight(piece, patterns)}{suffix}")  # noqa: S308 (highlight escapes)


def _words_pattern(words: list[str]) -> list[re.Pattern]:
    if not words:
        return []
    alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    return [re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", re.IGNORECASE)]


def _matched_words(text: str, stems: set[str], tokens: list | None = None) -> list[str]:
    tokens = tokenize(text) if tokens is None else tokens
    return list(dict.fromkeys(text[s:e].lower() for token, s, e in tokens if token in stems))


def search(query: str) -> list[Hit]:
    terms = query_terms(expand_query(query))
    if not terms:
        return []
    index = current_index()
    groups = _groups(terms)
    stems = {token for group in groups for token in group}
    candidates = {number for token in stems for number in index.postings.get(token, ())}
    scored, chapters = [], {}
    for number in candidates:
        doc = index.docs[number]
        score, matched = _score(index, doc, groups, chapters)
        if score > 0:
            scored.append((-score, doc.order, doc, matched))
    scored.sort(key=lambda item: (item[0], item[1]))
    # A block with every word first; blocks missing some show only when none has them all.
    complete = [item for item in scored if item[3] == len(groups)]
    scored = complete or scored

    hits: list[Hit] = []
    shown: set[str] = set()
    for negative, _order, doc, _matched in scored:
        if doc.group in shown:
            continue
        shown.add(doc.group)
        words = _matched_words(doc.text, stems, doc.tokens)
        patterns = _words_pattern(words + _matched_words(doc.title, stems))
        url, block_id = doc.url, ""
        if doc.kind == "section":
            path, _, block_id = doc.url.partition("#")
            # A diagram is landed on without marks: the page's highlighter would put HTML <mark>s inside SVG text.
            if words and doc.block_kind != "figure":
                url = f"{path}?{urlencode({'highlight': ' '.join(words)})}#{block_id}"
        hits.append(
            Hit(
                kind=doc.kind,
                title=doc.title,
                url=url,
                context=doc.context,
                score=-negative,
                block_id=block_id,
                text=doc.text,
                title_html=highlight(doc.title, patterns),
                snippet=snippet(doc.text, patterns),
            )
        )
        if len(hits) == MAX_RESULTS:
            break
    return hits
