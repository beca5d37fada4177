import functools
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from topics import loader
from topics.drills.matching import match_key_points, phrase_words

POINTS = [
    {"label": "At-least-once", "phrases": ["at-least-once", "redeliver"]},
    {"label": "Idempotency", "phrases": ["idempoten", "dedup"]},
    {"label": "Kafka acks", "phrases": ["acks=all"]},
    {"label": "RPS", "phrases": ["rps"]},
    {"label": "Never mentioned", "phrases": ["circuit breaker"]},
]


def test_matching_ticks_exactly_the_points_whose_phrases_appear():
    result = match_key_points("We get AT LEAST ONCE delivery, so consumers are Idempotent; acks = all.", POINTS)
    assert result.matched_indexes == [0, 1, 2]


def test_matching_ignores_case_and_punctuation_and_reports_words_as_written():
    result = match_key_points("Messages are REDELIVERED? No: they're re-delivered... Redeliver!", POINTS)
    assert result.points[0].matched_phrases == ["redeliver"]
    # "REDELIVERED" counts (a 4+ letter last word is a stem); "re-delivered" is two other words.
    assert result.points[0].matched_words == ["REDELIVERED", "Redeliver"]


def test_matching_respects_word_boundaries():
    result = match_key_points("harps and warps at 500 rpsx; preacks=allx", POINTS)
    assert result.matched_indexes == []


def test_matching_allows_plurals_and_author_stems():
    result = match_key_points("Two dedups; idempotency keys; 300 RPS", POINTS)
    assert result.matched_indexes == [1, 3]
    assert result.points[1].matched_words == ["idempotency", "dedups"]


def test_matching_is_deterministic_and_highlights_segments():
    text = "Use a circuit\nbreaker, and dedup."
    first, second = match_key_points(text, POINTS), match_key_points(text, POINTS)
    assert first.matched_indexes == second.matched_indexes == [1, 4]
    assert first.segments == [
        ("Use a ", False),
        ("circuit\nbreaker", True),
        (", and ", False),
        ("dedup", True),
        (".", False),
    ]
    assert "".join(text for text, _ in first.segments) == text


def test_empty_answer_matches_nothing():
    assert match_key_points("", POINTS).matched_indexes == []


# --- Real rubrics, read from the question files the way the loader reads them (no database needed).

QUESTIONS_DIR = Path(settings.BASE_DIR) / "topics" / "content" / "queueing" / "questions"
LABELLED = Path(__file__).with_name("labelled_answers.yaml")
# Words so common in answers about queues that, alone, they show nothing about which point was made.
GENERIC_TEXT = """
event events command commands message messages msg queue queues topic topics subscription subscriptions subscriber
subscribers publish publisher kafka sqs sns redis rabbitmq rq celery broker brokers log logs team copy copies worker
workers consumer consumers producer producers partition partitions retry retries retried delay order orders ordering
status poll polling batch batches cap half mean average version versions shared global scope delivery processing
process effect effects external email commit atomic atomically returning interface compare seconds minutes cpu spike
spikes burst bursts bursting drain backlog throughput replay routing retention expire expired expiry stale cancel
region multiply ratio concurrent concurrency double twice margin extend heartbeat lease background operate pending
sending tracing independent decouple smooth absorb buffer spread spreads overlap percentage downstream database
postgres utilization saturation span tail distribution availability outage isolation coupling reference immutable
minimize lost lose loss duplicate duplicates redelivered redelivery exception alarm alert metadata reset deadline
requirements offset exchanges operational progress stuck resume channel abandoned liveness regenerate tier ttl
measured permanent transient compatibility validation schema version dlq idempotent idempotency dedupe dedup inbox
relay cleanup payments metrics analytics jitter backoff latency load capacity error errors failure failures fail
failed crash debug key keys id table state step steps service services api request requests data cache memory time
rate limit size group groups priority critical bulk weighted quota floods
"""
GENERIC_WORDS = set(GENERIC_TEXT.split())


@functools.cache
def question_sources() -> list:
    problems = loader._Problems(QUESTIONS_DIR)
    sources = [loader.parse_file(path, problems) for path in sorted(QUESTIONS_DIR.glob("*.md"))]
    assert not problems.items
    return sources


def key_points_of(slug: str) -> list[dict]:
    return next(s.meta["key_points"] for s in question_sources() if s.meta["slug"] == slug)


def ticked_labels(answer: str, slug: str) -> list[str]:
    points = key_points_of(slug)
    return [points[i]["label"] for i in match_key_points(answer, points).matched_indexes]


def test_a_bare_generic_word_no_longer_ticks_the_named_false_positives():
    assert "Commands vs events" not in ticked_labels("Use pub/sub when you have lots of events.", "queue-vs-pubsub")
    assert "SNS-to-SQS or fanout exchange pattern" not in ticked_labels(
        "Pub/sub is like a queue but uses a subscription model.", "queue-vs-pubsub"
    )
    # The points still tick when the answer really makes them.
    assert "Commands vs events" in ticked_labels("Queues carry commands, topics carry events.", "queue-vs-pubsub")
    assert "SNS-to-SQS or fanout exchange pattern" in ticked_labels(
        "An SNS topic with one SQS queue per service subscribed to it.", "queue-vs-pubsub"
    )


@pytest.mark.parametrize(
    ("negated", "affirmed"),
    [
        ("We don't need a DLQ here.", "We do need a DLQ here."),
        ("We dont need a DLQ here.", "We need a DLQ here."),
        ("No DLQ: just add workers.", "A DLQ: then add workers."),
        ("Run it without a DLQ.", "Run it with a DLQ."),
        ("A DLQ isn't needed.", "A DLQ is needed."),
        ("Never use a DLQ for this.", "Always use a DLQ for this."),
    ],
)
def test_a_negated_phrase_does_not_tick(negated, affirmed):
    points = [{"label": "Dead-letters", "phrases": ["dlq"]}]
    assert match_key_points(negated, points).matched_indexes == []
    assert match_key_points(affirmed, points).matched_indexes == [0]


def test_negation_stops_at_the_clause_and_phrases_may_contain_their_own_negation():
    points = [{"label": "DLQ", "phrases": ["dlq"]}, {"label": "Keep it", "phrases": ["don't delete"]}]
    assert match_key_points("No retries. Move it to a DLQ.", points).matched_indexes == [0]
    assert match_key_points("No retries, DLQ after three.", points).matched_indexes == [0]
    assert match_key_points("On failure we just don't delete it.", points).matched_indexes == [1]


def test_a_plus_phrase_needs_every_part_nearby_and_highlights_each():
    points = [{"label": "Commands vs events", "phrases": ["command + event"]}]
    assert match_key_points("Lots of events flow through.", points).matched_indexes == []
    result = match_key_points("A command says do it; an event says it happened.", points)
    assert result.points[0].matched_words == ["command", "event"]
    far = "A command. " + "word " * 40 + "An event."
    assert match_key_points(far, points).matched_indexes == []


def test_inflections_and_one_typo_in_a_long_word_still_match():
    points = [
        {"label": "Retries", "phrases": ["retried later"]},
        {"label": "VT", "phrases": ["visibility timeout"]},
        {"label": "Short", "phrases": ["lose"]},
    ]
    result = match_key_points("It is retrying later; the visiblity timeouts; it loses data", points)
    assert result.matched_indexes == [0, 1, 2]
    assert match_key_points("lost", [{"label": "x", "phrases": ["list"]}]).matched_indexes == []  # short: exact


def test_no_question_listens_for_a_lone_generic_word_or_only_words_of_its_prompt():
    problems = []
    for source in question_sources():
        prompt = set(phrase_words(source.meta["prompt"]))
        for point in source.meta["key_points"]:
            for phrase in point["phrases"]:
                parts = [phrase_words(part) for part in phrase.split(" + ")]
                if len(parts) == 1 and len(parts[0]) == 1 and parts[0][0] in GENERIC_WORDS:
                    problems.append(f"{source.meta['slug']}: {phrase!r} is one generic word")
                if all(word in prompt for part in parts for word in part):
                    problems.append(f"{source.meta['slug']}: {phrase!r} only repeats the prompt")
    assert problems == []


def test_labelled_answers_meet_the_precision_and_recall_bar():
    cases = yaml.safe_load(LABELLED.read_text())["answers"]
    assert len(cases) >= 60
    assert len({case["question"] for case in cases}) >= 12
    tp = fp = fn = 0
    for case in cases:
        ticked = set(match_key_points(case["answer"], key_points_of(case["question"])).matched_indexes)
        truth = set(case["covers"])
        tp, fp, fn = tp + len(ticked & truth), fp + len(ticked - truth), fn + len(truth - ticked)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= 0.9, (precision, recall)
    assert recall >= 0.8, (precision, recall)
