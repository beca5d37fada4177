import pytest
from django.core.management import call_command

from topics.models import Question, Section, Topic

KEY_POINTS = [
    {"label": "Bulkheads isolate each dependency", "phrases": ["bulkhead", "separate worker pool", "isolat"]},
    {"label": "Circuit breaker pauses consumption", "phrases": ["circuit breaker", "pause consumption"]},
    {"label": "Timeouts and retry budget", "phrases": ["timeout", "retry budget", "jitter"]},
    {"label": "Producer-side outbox", "phrases": ["outbox", "acks=all"]},
]
CURVEBALLS = [  # as topics/content/queueing/topic.md's front matter has them
    {"text": "A deploy just put 10,000 jobs in the DLQ — what now?", "preset": "poison", "label": "poison messages"},
    {"text": "A worker host was SIGKILLed mid-charge; did the customer get charged twice?", "preset": "crash",
     "label": "killed work-horse", "also": "duplicates"},
    {"text": "Traffic tripled in 5 minutes and queue age is 4 minutes — first three actions?", "preset": "spike",
     "label": "traffic spike", "also": "slow-consumer"},
]  # fmt: skip
MODEL_ANSWER = "Zebra-unique model answer: isolate each downstream behind its own pool."


def make_question(slug: str = "partial-outages", *, topic_slug: str = "queueing", **fields) -> Question:
    topic, _ = Topic.objects.get_or_create(slug=topic_slug, defaults={"title": "Queueing", "curveballs": CURVEBALLS})
    section, _ = Section.objects.get_or_create(
        topic=topic, slug="reliability", defaults={"title": "Scalability and reliability", "order": 1}
    )
    defaults = {
        "prompt": f"What is your mitigation strategy for {slug}?",
        "level": "staff",
        "section": section,
        "preset": "flaky",
        "key_points": KEY_POINTS,
        "followups": ["The payment provider fails 30% of calls. Retry or pause?"],
        "answer_md": MODEL_ANSWER,
        "answer_html": f"<p>{MODEL_ANSWER}</p>",
    }
    defaults.update(fields)
    return Question.objects.create(topic=topic, slug=slug, **defaults)


@pytest.fixture
def question(db) -> Question:
    return make_question()


@pytest.fixture
def content(db):
    """The real question bank, loaded once per test database state (transactional tests flush it)."""
    if not Question.objects.exists():
        call_command("load_content")
    return Question.objects.all()


PHASED_ANSWER_MD = """Start from the guarantees, then size it.

## Requirements
Walrus-requirements: at-least-once delivery, per-key order.

## Estimates
Walrus-estimates: 50k msg/s peak.

```text
## not a heading: inside a code block
```

## High-level design
Walrus-design: partitioned log, consumer groups.

## Deep dive
Walrus-deep-dive: leases and idempotent consumers.

## Failure modes & wrap-up
Walrus-failure: broker loss, poison messages, redrive.
"""


def make_design_question(slug: str = "design-a-queue", **fields) -> Question:
    """A full design prompt whose model answer has the five phase headings, rendered as the loader does."""
    from topics.markdown import render_markdown

    defaults = {
        "prompt": f"Design {slug}: a distributed message queue.",
        "kind": Question.Kind.DESIGN,
        "followups": ["A broker disk fills up at peak — what breaks first?"],
        "answer_md": PHASED_ANSWER_MD,
        "answer_html": render_markdown(PHASED_ANSWER_MD).html,
    }
    return make_question(slug, **{**defaults, **fields})
