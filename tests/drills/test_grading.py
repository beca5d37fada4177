"""Self-grading that cannot be gamed (topics/drills/grading.py), measured on the real question files."""

import sys
from pathlib import Path

import yaml

from topics.drills.grading import assess
from topics.drills.matching import match_key_points

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import rubric  # noqa: E402  (bench/rubric.py: the gaming set and the question files, as the benchmark reads them)

BACKOFF = [
    {"label": "Capped exponential backoff formula", "phrases": ["base * 2", "doubling", "exponential"]},
    {"label": "Thundering herd", "phrases": ["thundering herd", "lockstep"]},
    {"label": "Dead-letter after max attempts", "phrases": ["max attempts", "to dlq"]},
]


def test_pasted_listens_for_phrases_earn_nothing_and_are_flagged():
    pasted = ", ".join(phrase for point in BACKOFF for phrase in point["phrases"])
    assert match_key_points(pasted, BACKOFF).matched_indexes == [0, 1, 2]  # the phrases are all there
    result = assess(pasted, BACKOFF)
    assert result.credited == []
    assert "list" in result.flags
    assert result.suggested_rating == 1


def test_sentences_saying_the_same_things_are_credited():
    answer = (
        "Each retry waits base * 2^n capped at a maximum. Without jitter every client retries in lockstep "
        "and hammers the service again. After max attempts the job goes to the DLQ so it stops blocking."
    )
    result = assess(answer, BACKOFF)
    assert result.credited == [0, 1, 2]
    assert result.flags == []
    assert result.suggested_rating == 3


def test_a_formula_point_needs_a_formula():
    words_only = "Use exponential backoff so that each client waits longer between attempts after a failure."
    assert assess(words_only, BACKOFF).credited == []
    assert assess(words_only, BACKOFF).denied == {0: "formula"}
    assert assess(words_only + " The delay is min(cap, base * 2^n).", BACKOFF).credited == [0]


def test_text_copied_from_the_model_answer_earns_nothing():
    model = "When the provider recovers every client retries in lockstep, a thundering herd that knocks it over again."
    assert assess(model, BACKOFF).credited == [1]
    copied = assess(model, BACKOFF, shown=["Prompt", model])
    assert copied.credited == []
    assert copied.flags[0] == "copied"


def test_an_answer_faster_than_typing_is_flagged_but_keeps_its_credit():
    answer = "Clients retry in lockstep and cause a thundering herd, so spread the retries out with random jitter."
    assert "fast" in assess(answer, BACKOFF, duration_ms=1000).flags
    assert "fast" not in assess(answer, BACKOFF, duration_ms=60_000).flags
    assert assess(answer, BACKOFF, duration_ms=1000).credited == [1]


def test_the_sites_own_words_are_synonyms():
    points = [{"label": "Manual replay", "phrases": ["manual replay"]}]
    assert match_key_points("An operator can do a manual redrive from the DLQ.", points).matched_indexes == [0]


def test_the_gaming_set_is_credited_at_most_ten_percent_and_blind_answers_stay_accurate():
    questions = rubric.question_files()
    rate, _kinds = rubric.gaming_credit(questions)
    assert rate <= 0.10, rate
    cases = [c for c in yaml.safe_load(rubric.LABELLED.read_text())["answers"] if c.get("blind")]
    tp = fp = fn = 0
    for case in cases:
        question = questions[case["question"]]
        credited = set(assess(case["answer"], question.key_points, shown=question.shown).credited)
        truth = set(case["covers"])
        tp, fp, fn = tp + len(credited & truth), fp + len(credited - truth), fn + len(truth - credited)
    assert tp / (tp + fp) >= 0.9
    assert tp / (tp + fn) >= 0.8
