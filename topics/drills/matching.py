"""Rubric matching: which key points does a learner's answer mention, and with which words.

Deterministic and explainable on purpose (no AI): both the answer and each phrase are split into
words (letters and digits; case and punctuation ignored, so "At-least-once" == "at least once"),
and a phrase matches where its words appear consecutively in the answer. Words are compared after
light stemming ("retries" == "retry", "deleted" == "delete"), a long word may carry one typo
("visiblity"), and a phrase's last word of 4+ characters may begin a longer word, so authors can
write stems ("idempoten" matches "idempotency").

Two rules keep a single generic word from ticking a point:
- a phrase written "a + b" needs every part, each within WINDOW words of the first; authors use it
  for points whose words are generic alone ("command + event");
- a phrase right after a negation in the same clause ("no DLQ", "don't need a DLQ", "without
  retries") or followed by "isn't needed" does not count. A phrase that itself starts with a
  negation ("not the broker") is taken as written.
"""

import functools
import re
import unicodedata
from dataclasses import dataclass, field

from topics.text import stem

WORD = re.compile(r"\w+")
CLAUSE_BREAK = re.compile(r"[.,;:!?()\[\]\n]|\s[-–—]\s|\bbut\b", re.IGNORECASE)
STEM_MIN = 4
TYPO_MIN = 7  # words this long may differ by one edit
WINDOW = 30  # words a "+" phrase's parts may be apart
NEGATION_REACH = 3  # words before a phrase that a negation can reach
NEGATIONS = {"no", "not", "never", "without", "nor", "cannot", "cant", "dont", "doesnt", "isnt", "arent", "wont", "t"}
NEEDS = {"need", "needed", "necessary", "required", "matter", "matters", "help", "helps"}
FILLERS = {"a", "an", "the", "its", "their", "our", "your", "this", "that"}
# The site's own words for one thing, matched as one: a learner who writes "redrive" where a phrase says
# "replay" (or "dedup" for "deduplicate") used the vocabulary the chapters teach.
SYNONYMS = {"replay": "redrive", "reprocess": "redrive", "deduplicate": "dedupe", "dedup": "dedupe"}


def canonical(word_stem: str) -> str:
    return CANONICAL_STEMS.get(word_stem, word_stem)


RULE = (
    "A key point is ticked when your answer contains one of its phrases; a phrase written “a + b” needs all "
    "its parts close together. Case, punctuation, plurals and word endings are ignored, a long word may "
    "have one typo, the site's synonyms count as one word (“replay” = “redrive”), and a phrase right after a "
    "negation (“no DLQ”, “we don't need …”, “without …”) does not count."
)


@dataclass(frozen=True)
class Token:
    word: str  # normalised
    stem: str
    start: int
    end: int
    clause: int  # index of the clause (sentence-ish run) the word is in


def words(text: str) -> list[Token]:
    """A Token for each word, with offsets into the original text and its clause number."""
    breaks = [m.start() for m in CLAUSE_BREAK.finditer(text)]
    tokens, clause = [], 0
    for m in WORD.finditer(text):
        while clause < len(breaks) and breaks[clause] < m.start():
            clause += 1
        word = unicodedata.normalize("NFKC", m.group()).casefold()
        tokens.append(Token(word, stem(word), m.start(), m.end(), clause))
    return tokens


CANONICAL_STEMS = {stem(word): stem(canon) for word, canon in SYNONYMS.items()}


@functools.lru_cache(maxsize=4096)
def phrase_words(phrase: str) -> tuple[str, ...]:
    return tuple(token.word for token in words(phrase))


def one_edit_apart(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1 or a[0] != b[0]:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diffs) == 1 or (len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]])
    short, long = sorted((a, b), key=len)
    i = next((i for i in range(len(short)) if short[i] != long[i]), len(short))
    return short[i:] == long[i + 1 :]


def word_matches(expected: str, expected_stem: str, actual: Token, *, last: bool) -> bool:
    if actual.word == expected or canonical(actual.stem) == canonical(expected_stem):
        return True
    if last and len(expected) >= STEM_MIN and actual.word.startswith(expected):
        return True
    return len(expected) >= TYPO_MIN and one_edit_apart(expected, actual.word)


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


def negated(tokens: list[Token], first: int, last: int) -> bool:
    """A negation shortly before tokens[first] (same clause), or "isn't needed" shortly after tokens[last]."""
    clause = tokens[first].clause
    before = [t.word for t in tokens[max(0, first - NEGATION_REACH) : first] if t.clause == clause]
    if NEGATIONS.intersection(before):
        return True
    after = [t.word for t in tokens[last + 1 : last + 1 + NEGATION_REACH] if t.clause == tokens[last].clause]
    return bool(NEGATIONS.intersection(after)) and bool(NEEDS.intersection(after))


def first_word_candidates(tokens: list[Token], vocabulary: dict[str, list[int]], expected: str, *, last: bool):
    """Positions where a phrase could start: checked per distinct answer word, so long answers stay cheap."""
    expected_stem = stem(expected)
    loose = (last and len(expected) >= STEM_MIN) or len(expected) >= TYPO_MIN
    positions: list[int] = []
    for word, at in vocabulary.items():
        if (
            word == expected
            or canonical(tokens[at[0]].stem) == canonical(expected_stem)
            or (loose and word_matches(expected, expected_stem, tokens[at[0]], last=last))
        ):
            positions.extend(at)
    return sorted(positions)


def find_words(tokens: list[Token], vocabulary: dict[str, list[int]], phrase: tuple[str, ...]) -> list[tuple[int, int]]:
    """(first, last) token indexes where the phrase's words occur in order, articles between them allowed."""
    found: list[tuple[int, int]] = []
    if not phrase:
        return found
    stems = [stem(word) for word in phrase]
    last = len(phrase) - 1
    checks_negation = not NEGATIONS.intersection(phrase)  # "don't delete" is taken as written
    for i in first_word_candidates(tokens, vocabulary, phrase[0], last=last == 0):
        position, ok = i + 1, True
        for j in range(1, len(phrase)):
            if position < len(tokens) and tokens[position].word in FILLERS and phrase[j] not in FILLERS:
                position += 1  # "same DB transaction" still needs every word, but "the" may sit between
            if position >= len(tokens) or not word_matches(phrase[j], stems[j], tokens[position], last=j == last):
                ok = False
                break
            position += 1
        if ok and not (checks_negation and negated(tokens, i, position - 1)):
            found.append((i, position - 1))
    return found


def find_phrase(tokens: list[Token], vocabulary: dict[str, list[int]], phrase: str) -> list[tuple[int, int]]:
    """Character spans that make up the phrase's matches (every part of an "a + b" phrase)."""
    parts = [phrase_words(part) for part in phrase.split(" + ")]
    hits = [find_words(tokens, vocabulary, part) for part in parts]
    if not all(hits):
        return []
    if len(parts) == 1:
        return [(tokens[a].start, tokens[b].end) for a, b in hits[0]]
    spans = []
    for anchor_first, anchor_last in hits[0]:
        near = [
            [(a, b) for a, b in part_hits if abs(a - anchor_first) <= WINDOW and abs(b - anchor_last) <= WINDOW]
            for part_hits in hits[1:]
        ]
        if all(near):
            spans.append((tokens[anchor_first].start, tokens[anchor_last].end))
            spans.extend((tokens[a].start, tokens[b].end) for part in near for a, b in part[:1])
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
    vocabulary: dict[str, list[int]] = {}
    for position, token in enumerate(tokens):
        vocabulary.setdefault(token.word, []).append(position)
    all_spans: list[tuple[int, int]] = []
    points = []
    for index, point in enumerate(key_points):
        result = PointMatch(index=index, label=str(point.get("label", "")), phrases=list(point.get("phrases", [])))
        for phrase in result.phrases:
            spans = find_phrase(tokens, vocabulary, phrase)
            if spans:
                result.matched_phrases.append(phrase)
                for start, end in spans:
                    found = text[start:end]
                    if found not in result.matched_words:
                        result.matched_words.append(found)
                all_spans.extend(spans)
        points.append(result)
    return MatchResult(points=points, segments=segments_for(text, all_spans))
