"""Rubric matching: which key points does a learner's answer mention, and with which words.

Deterministic and explainable on purpose (no AI): both the answer and each phrase are split into
words (letters and digits; case and punctuation ignored, so "At-least-once" == "at least once"),
and a phrase matches where its words appear consecutively in the answer. Every word must match a
whole word, allowing a plural "s"/"es"; the phrase's last word, when it has 4+ characters, may
also begin a longer word, so authors can write stems ("idempoten" matches "idempotency").
"""

import re
import unicodedata
from dataclasses import dataclass, field

WORD = re.compile(r"\w+")
STEM_MIN = 4
RULE = (
    "A key point is ticked when your answer contains one of its phrases: case and punctuation are ignored, "
    "phrases match whole words (plurals count), and a final word of 4+ letters also matches longer words "
    "starting with it."
)


def words(text: str) -> list[tuple[str, int, int]]:
    """(normalised word, start, end) for each word, with offsets into the original text."""
    return [(unicodedata.normalize("NFKC", m.group()).casefold(), m.start(), m.end()) for m in WORD.finditer(text)]


def phrase_words(phrase: str) -> list[str]:
    return [word for word, _, _ in words(phrase)]


def word_matches(expected: str, actual: str, *, last: bool) -> bool:
    if actual == expected or actual in (expected + "s", expected + "es"):
        return True
    return last and len(expected) >= STEM_MIN and actual.startswith(expected)


@dataclass
class PointMatch:
    index: int
    label: str
    phrases: list[str]
    matched_phrases: list[str] = field(default_factory=list)
    matched_words: list[str] = field(default_factory=list)  # as the learner wrote them

    @property
    def matched(self) -> bool:
        return bool(self.matched_phrases)


@dataclass
class MatchResult:
    points: list[PointMatch]
    segments: list[tuple[str, bool]]  # the answer split into (text, highlighted) runs

    @property
    def matched_indexes(self) -> list[int]:
        return [point.index for point in self.points if point.matched]


def find_phrase(tokens: list[tuple[str, int, int]], phrase: list[str]) -> list[tuple[int, int]]:
    """Character spans in the answer where the phrase's words occur consecutively."""
    spans = []
    if not phrase:
        return spans
    last = len(phrase) - 1
    for i in range(len(tokens) - last):
        if all(word_matches(expected, tokens[i + j][0], last=j == last) for j, expected in enumerate(phrase)):
            spans.append((tokens[i][1], tokens[i + last][2]))
    return spans


def merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def segments_for(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    segments: list[tuple[str, bool]] = []
    position = 0
    for start, end in merge_spans(spans):
        if start > position:
            segments.append((text[position:start], False))
        segments.append((text[start:end], True))
        position = end
    if position < len(text):
        segments.append((text[position:], False))
    return segments


def match_key_points(text: str, key_points: list[dict]) -> MatchResult:
    tokens = words(text)
    all_spans: list[tuple[int, int]] = []
    points = []
    for index, point in enumerate(key_points):
        result = PointMatch(index=index, label=str(point.get("label", "")), phrases=list(point.get("phrases", [])))
        for phrase in result.phrases:
            spans = find_phrase(tokens, phrase_words(phrase))
            if spans:
                result.matched_phrases.append(phrase)
                for start, end in spans:
                    found = text[start:end]
                    if found not in result.matched_words:
                        result.matched_words.append(found)
                all_spans.extend(spans)
        points.append(result)
    return MatchResult(points=points, segments=segments_for(text, all_spans))
