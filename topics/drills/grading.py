"""Self-grading that cannot be gamed: what the rubric *credits* from an answer, on top of phrase matching.

`matching.match_key_points` finds the phrases; this module decides which of those finds earn credit
and says why the rest did not:
- text copied from what the page showed (the prompt, the model answer: any run of COPY_RUN words in
  the same order) earns nothing;
- a line that is a list of terms rather than sentences earns nothing (few of the small words English
  sentences are made of, or almost every word a listened-for phrase: the "listens for" phrases pasted);
- a point about a formula needs a formula (an operator, min(...), a power) somewhere in the answer;
- an answer written faster than anyone types is flagged (credit stays: it may have been typed elsewhere).
A suggested rating follows from the share of key points credited.
"""

import itertools
import re
from dataclasses import dataclass, field

from topics.drills.matching import MatchResult, Token, match_key_points, words

COPY_RUN = 8  # words in a row, in the same order as the page showed them
LABEL_RUN = 4  # a key-point label this long, copied whole
LIST_RUN = 5  # this many matched phrases in a row, at most LIST_GAP words apart, are a pasted list
LIST_GAP = 1
LIST_JOINERS = frozenset({"and", "or", "plus", "then"})  # words that join list items, not sentences
LIST_MIN_WORDS = 8
LIST_FUNCTION_SHARE = 0.08  # a line of LIST_MIN_WORDS+ words with fewer small words is a list of terms
TYPING_CHARS_PER_S = 12  # ~140 words a minute: faster than anyone types an answer
FAST_MIN_CHARS = 80
LINE_BREAK = re.compile(r"[.!?;](?=\s|$)|\n+|^\s*[-*•]\s", re.MULTILINE)
FORMULA = re.compile(r"[=×^*/]|\bmin\s*\(|\bmax\s*\(|\d\s*\*\*|\bexp\s*\(|\blog\s*\(")
FUNCTION_WORDS = frozenset(
    """a an the and or but if then so because since when while as than that which who what where how why
    is are was were be been being do does did has have had will would can could should may might must
    it its it's this these those there they them their we our us you your i me my he she his her
    of to in on at by for with from into onto over under after before until about through per via
    not no never only just also too very more most less each every all any some one both either
    up out off again once still even""".split()  # noqa: SIM905 (a word list reads better as prose)
)
FLAGS = {
    "copied": "Parts of this answer repeat the question or the model answer word for word; they earn no credit.",
    "list": "Parts of this answer are a list of terms rather than sentences; a list earns no credit. "
    "Say what each term does and why.",
    "formula": "A point that asks for a formula needs the formula itself (e.g. min(cap, base * 2^n)).",
    "fast": "This answer arrived faster than anyone types it. Rate it on what you could say unaided.",
}


@dataclass
class Assessment:
    match: MatchResult
    credited: list[int]
    flags: list[str] = field(default_factory=list)
    denied: dict[int, str] = field(default_factory=dict)  # point index -> flag that withheld its credit

    @property
    def total(self) -> int:
        return len(self.match.points)

    @property
    def coverage(self) -> float:
        return len(self.credited) / self.total if self.total else 0.0

    @property
    def messages(self) -> list[str]:
        return [FLAGS[flag] for flag in self.flags]

    @property
    def suggested_rating(self) -> int:
        """1 Again below 40% of the points or when gamed, 2 Hard below 70%, else 3 Good (Easy is the learner's call)."""
        if not self.credited or self.coverage < 0.4 or {"copied", "list"} & set(self.flags):
            return 1
        return 2 if self.coverage < 0.7 else 3


def shingles(tokens: list[Token]) -> set[tuple[str, ...]]:
    stems = [token.stem for token in tokens]
    return {tuple(stems[i : i + COPY_RUN]) for i in range(len(stems) - COPY_RUN + 1)}


def copied_offsets(tokens: list[Token], shown: list[str], labels: list[str]) -> list[tuple[int, int]]:
    """Character spans of the answer that repeat COPY_RUN+ words of a shown text in order, or a whole
    key-point label of LABEL_RUN+ words (the rubric shows them)."""
    runs: dict[int, set[tuple[str, ...]]] = {COPY_RUN: set()}
    for text in shown:
        runs[COPY_RUN] |= shingles(words(text))
    for label in labels:
        stems = tuple(token.stem for token in words(label))
        if len(stems) >= LABEL_RUN:
            runs.setdefault(len(stems), set()).add(stems)
    stems = [token.stem for token in tokens]
    covered = [False] * len(tokens)
    for length, seen in runs.items():
        for i in range(len(tokens) - length + 1):
            if tuple(stems[i : i + length]) in seen:
                covered[i : i + length] = [True] * length
    return [(token.start, token.end) for token, hit in zip(tokens, covered, strict=True) if hit]


def listed_spans(text: str, tokens: list[Token], phrase_spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Character spans of the answer that are lists of terms, not sentences: LIST_RUN+ matched phrases with
    nothing but punctuation or "and" between them (the "listens for" phrases pasted), or a long line with almost none of the
    small words sentences are made of (a buzzword list)."""
    spans: list[tuple[int, int]] = []
    run: list[tuple[int, int]] = []

    def close() -> None:
        if len(run) >= LIST_RUN:
            spans.append((run[0][0], run[-1][1]))

    for span in sorted(phrase_spans):
        if run:
            between = [t for t in tokens if run[-1][1] <= t.start < span[0] and t.word not in LIST_JOINERS]
            if len(between) > LIST_GAP:
                close()
                run = []
        run.append(span)
    close()
    bounds = [0, *(m.end() for m in LINE_BREAK.finditer(text)), len(text)]
    for start, end in itertools.pairwise(bounds):
        line = [t for t in tokens if start <= t.start < end]
        inside = [any(a <= t.start < b for a, b in phrase_spans) for t in line if t.word not in LIST_JOINERS]
        if sum(1 for a, b in phrase_spans if start <= a < end) >= 2 and inside and all(inside):
            spans.append((start, end))  # a line of nothing but phrases: "idempotency key, DLQ"
            continue
        if len(line) < LIST_MIN_WORDS or FORMULA.search(text[start:end]):
            continue  # short, or a formula: not a list of terms
        if sum(t.word in FUNCTION_WORDS for t in line) / len(line) < LIST_FUNCTION_SHARE:
            spans.append((start, end))
    return spans


def within(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(start <= position < end for start, end in spans)


def assess(
    text: str, key_points: list[dict], *, shown: list[str] | None = None, duration_ms: int | None = None
) -> Assessment:
    """Which key points an answer earns, given what the page showed (prompt, model answer) and how long it took."""
    match = match_key_points(text, key_points)
    tokens = words(text)
    labels = [str(point.get("label", "")) for point in key_points]
    copied = copied_offsets(tokens, [s for s in shown or [] if s], labels)
    phrase_spans = [(start, start + len(segment)) for start, segment in _highlights(match)]
    listed = listed_spans(text, tokens, phrase_spans)
    has_formula = bool(FORMULA.search(text))
    credited, denied, flags = [], {}, []
    for point in match.points:
        if not point.matched:
            continue
        spots = [m.start() for found in point.matched_words for m in re.finditer(re.escape(found), text)]
        honest = [p for p in spots if not within(p, copied) and not within(p, listed)]
        if not honest:
            denied[point.index] = "copied" if all(within(p, copied) for p in spots) else "list"
        elif "formula" in point.label.lower() and not has_formula:
            denied[point.index] = "formula"
        else:
            credited.append(point.index)
    flags = [flag for flag in ("copied", "list", "formula") if flag in denied.values()]
    if copied and "copied" not in flags and len(copied) >= COPY_RUN:
        flags.insert(0, "copied")
    if (
        duration_ms is not None
        and len(text) >= FAST_MIN_CHARS
        and len(text) > TYPING_CHARS_PER_S * max(duration_ms, 1) / 1000
    ):
        flags.append("fast")
    return Assessment(match=match, credited=credited, flags=flags, denied=denied)


def _highlights(match: MatchResult):
    position = 0
    for segment, highlighted in match.segments:
        if highlighted:
            yield position, segment
        position += len(segment)
