"""Words as search and rubric matching see them: tokens, stopwords, one stemmer, a clean query."""

import re
import unicodedata
from functools import lru_cache

MAX_QUERY = 200
MAX_TERMS = 8

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "versus",
        "vs",
    ]
)
# Abbreviations read as the words they stand for, in the text and in a query: "DLQ" is a dead-letter queue.
ABBREVIATIONS = {"dlq": ("dead", "letter", "queue")}
WORD = re.compile(r"[^\W_]+", re.UNICODE)


@lru_cache(maxsize=65536)  # a few thousand distinct words: each is stemmed once, not once per occurrence
def stem(word: str) -> str:
    """A light suffix stripper (plurals, -ed, -ing, -ly, final e): enough to match the forms a reader
    types, and conservative, so unrelated words are not merged ("concurrency" stays apart from
    "concurrent"). Search and rubric matching (topics.drills.matching) share it.

    Why not a library: Snowball's English stemmer (snowballstemmer, Porter2) was measured in its place
    (issue #21). Rubric matching came out the same once nouns like "durability" were kept apart from
    their adjective, but search lost the teaching passage for three of the brief's terms ("SLO",
    "effectively-once", "consumer group rebalance": Porter2 folds "effectively" into "effect" and
    "rebalance" apart from "rebalancing") and merged words the ranking keeps apart."""
    w = word.lower()
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith(("ies", "ied")) and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses") or w.endswith(("xes", "ches", "shes")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]  # shedding -> shed, capped -> cap
            break
    if w.endswith("ation") and len(w) > 7:
        w = w[:-3]  # propagation / propagated, deduplication / deduplicates
    if w.endswith("ly") and len(w) > 5:
        w = w[:-2]
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]  # cache / caching, queue / queued
    return w


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """(stem, start, end) of each word that is not a stopword; an abbreviation gives each word it stands for."""
    tokens = []
    for match in WORD.finditer(text):
        word = match[0].lower()
        if word in STOPWORDS or len(word) < 2:
            continue
        for part in ABBREVIATIONS.get(word, (word,)):
            tokens.append((stem(part), match.start(), match.end()))
    return tokens


def clean_query(raw: str | None) -> str:
    """Whitespace collapsed, control characters (NUL included) dropped, at most MAX_QUERY characters."""
    text = "".join(ch for ch in (raw or "")[: MAX_QUERY * 4] if unicodedata.category(ch)[0] != "C" or ch.isspace())
    return re.sub(r"\s+", " ", text).strip()[:MAX_QUERY]


def query_terms(query: str) -> list[str]:
    """The query's distinct stems, in order, at most MAX_TERMS."""
    return list(dict.fromkeys(token for token, _start, _end in tokenize(query)))[:MAX_TERMS]
