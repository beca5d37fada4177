"""Site search over topics, sections (with their sub-headings) and drill questions.

The content is a few hundred kilobytes, so we scan it in Python: portable across SQLite and
PostgreSQL, and ranking stays simple to reason about. Title-level matches (topic title, section
title or sub-heading, question prompt) rank above body-only matches, then by number of hits.
"""

import re
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from topics.markdown import html_to_text
from topics.models import Question, Section, Topic

MAX_QUERY = 200
MAX_TERMS = 8
MAX_RESULTS = 30
SNIPPET_BEFORE = 70
SNIPPET_AFTER = 170


def clean_query(raw: str | None) -> str:
    return re.sub(r"\s+", " ", (raw or "")).strip()[:MAX_QUERY]


def _term_pattern(term: str) -> str:
    # Word-prefix match plus a little plural folding: "retries" finds "retry", "queues" finds "queue".
    if len(term) > 4 and term.endswith("ies"):
        return rf"\b{re.escape(term[:-3])}(?:y|ies)"
    if len(term) > 3 and term.endswith("s") and not term.endswith("ss"):
        return rf"\b{re.escape(term[:-1])}"
    return rf"\b{re.escape(term)}"


def query_terms(query: str) -> list[str]:
    terms = [t for t in dict.fromkeys(re.findall(r"\w+", query.lower())) if len(t) > 1]
    return terms[:MAX_TERMS]


@dataclass
class Hit:
    kind: str  # "topic" | "section" | "question"
    title: str
    url: str
    context: str  # where it lives ("Queueing › Core concepts")
    heading_terms: int  # distinct terms found in a title, heading or prompt
    terms: int  # distinct terms found anywhere
    hits: int  # total occurrences
    phrase: int  # occurrences of the words side by side, as typed
    title_html: SafeString
    snippet: SafeString

    @property
    def sort_key(self) -> tuple:
        return (-self.heading_terms, -self.terms, -min(self.phrase, 1), -self.hits, self.title)


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
        return highlight(text[: SNIPPET_BEFORE + SNIPPET_AFTER].rsplit(" ", 1)[0] + " …", patterns)
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


def _count(patterns: list[re.Pattern], text: str) -> tuple[int, int]:
    counts = [len(p.findall(text)) for p in patterns]
    return sum(1 for c in counts if c), sum(counts)


def _score(patterns, phrase, heading_fields: list[str], body: str) -> dict:
    heading = " \n ".join(heading_fields)
    everything = heading + " \n " + body
    terms, hits = _count(patterns, everything)
    return {
        "heading_terms": _count(patterns, heading)[0],
        "terms": terms,
        "hits": hits,
        "phrase": len(phrase.findall(everything)) if phrase else 0,
    }


def search(query: str) -> list[Hit]:
    terms = query_terms(query)
    if not terms:
        return []
    patterns = [re.compile(_term_pattern(term), re.IGNORECASE) for term in terms]
    # The words side by side, as typed ("dead letter", "dead-letter") rank above scattered matches.
    phrase = re.compile(r"[\s-]+".join(_term_pattern(t) for t in terms), re.IGNORECASE) if len(terms) > 1 else None
    results: list[Hit] = []

    for topic in Topic.objects.published():
        intro = f"{topic.summary} {html_to_text(topic.intro_html)}".strip()
        score = _score(patterns, phrase, [topic.title], intro)
        if score["terms"]:
            results.append(
                Hit(
                    kind="topic",
                    title=topic.title,
                    url=topic.get_absolute_url(),
                    context="Topic",
                    title_html=highlight(topic.title, patterns),
                    snippet=snippet(intro, patterns),
                    **score,
                )
            )

    for section in Section.objects.select_related("topic").order_by("topic__order", "order"):
        headings = [entry["title"] for entry in section.toc]
        score = _score(patterns, phrase, [section.title, *headings], section.body_text)
        if not score["terms"]:
            continue
        url, title, context = section.get_absolute_url(), section.title, section.topic.title
        text = section.body_text
        if not _count(patterns, section.title)[0]:
            # The best matching sub-heading is the more precise place to send the reader.
            best = max(section.toc, key=lambda entry: _count(patterns, entry["title"]), default=None)
            if best and _count(patterns, best["title"])[0]:
                url = f"{section.topic.get_absolute_url()}#{best['id']}"
                title, context = best["title"], f"{section.topic.title} › {section.title}"
                # Quote the text under that heading rather than the first mention in the section.
                start = text.find(best["title"])
                text = text[start + len(best["title"]) :].strip() if start >= 0 else text
        results.append(
            Hit(
                kind="section",
                title=title,
                url=url,
                context=context,
                title_html=highlight(title, patterns),
                snippet=snippet(text, patterns),
                **score,
            )
        )

    for question in Question.objects.select_related("topic", "section"):
        answer = html_to_text(question.answer_html)
        score = _score(patterns, phrase, [question.prompt], answer)
        if score["terms"]:
            results.append(
                Hit(
                    kind="question",
                    title=question.prompt,
                    url=question.get_absolute_url(),
                    context=f"Drill · {question.get_level_display()} · {question.section.title}",
                    title_html=highlight(question.prompt, patterns),
                    snippet=snippet(answer, patterns),
                    **score,
                )
            )

    # Pages containing every word come first; partial matches show only when nothing has them all.
    complete = [hit for hit in results if hit.terms == len(terms)]
    results = complete or results
    results.sort(key=lambda hit: hit.sort_key)
    return results[:MAX_RESULTS]
