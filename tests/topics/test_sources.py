"""Every number the Study chapters state about a named product carries a clickable source (issue #24).

The rule, applied to the Markdown source of every chapter: a passage that names a product (Kafka, SQS, Redis,
...) and states a number must link to that product's own documentation and say when the link was checked
("checked 2026-12-07"). A passage is a paragraph, a list item (with its continuation lines) or a table row; a
table row may instead rely on the table's source line, a paragraph starting "Source" right after the table.
Code blocks and raw-HTML figures are not passages (a figure's numbers are drawn from the prose beside it). A
passage whose numbers are our own assumptions (a worked example's load, a cap "of, say, 20") says so where the
learner sees it, "(Worked example: our assumptions, not product limits.)", and needs no source; that label is a
claim a reviewer can check, and it is the only way out.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

CONTENT = Path(__file__).resolve().parents[2] / "topics" / "content" / "queueing"
CHAPTERS = sorted((CONTENT / "sections").glob("*.md"))

PRODUCT = re.compile(
    r"\b(Kafka|RabbitMQ|SQS|SNS|Redis|Celery|Sidekiq|Step Functions|Kinesis|EventBridge|Pub/Sub|NATS|Pulsar|"
    r"Temporal|Service Bus|Lambda|RQ)\b"
)
# A number as prose states one: digits not glued to a word (so "KIP-848", "X-Ray" and "p99" are names, not
# quantities) and not a heading's or list's own numbering.
NUMBER = re.compile(r"(?<![\w.#/-])\d[\d,.]*(?![\w-])")
CHECKED = re.compile(r"checked \d{4}-\d{2}-\d{2}")
OFFICIAL = (
    "kafka.apache.org", "cwiki.apache.org/confluence/display/KAFKA", "docs.aws.amazon.com", "aws.amazon.com/",
    "www.rabbitmq.com", "rabbitmq.com", "redis.io", "python-rq.org", "github.com/rq/rq", "docs.celeryq.dev",
    "github.com/sidekiq/sidekiq", "datatracker.ietf.org", "cloud.google.com/pubsub", "docs.nats.io",
    "pulsar.apache.org", "docs.temporal.io", "github.com/apache/kafka", "kubernetes.io", "docs.confluent.io", "learn.microsoft.com/en-us/azure/service-bus-messaging",
)  # fmt: skip
LINK = re.compile(r"\]\((https?://[^)\s]+)")
EXEMPT = re.compile(r"\(Worked example: our assumptions, not product limits\.\)")


@dataclass
class Passage:
    chapter: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.chapter}:{self.line}: {self.text[:140]}"


def is_sourced(text: str) -> bool:
    official = [url for url in LINK.findall(text) if any(domain in url for domain in OFFICIAL)]
    return bool(official) and bool(CHECKED.search(text))


def states_product_number(text: str) -> bool:
    prose = re.sub(r"\]\([^)]*\)", "]", text)  # a URL's digits are not a claim
    prose = re.sub(r"^\s*(?:[-*]|\d+\.)\s+", "", prose)  # nor is a list's numbering
    return bool(PRODUCT.search(prose)) and bool(NUMBER.search(prose))


def passages(path: Path) -> list[tuple[Passage, str | None]]:
    """Each passage of a chapter with the source line of its table (None outside tables)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i in range(1, len(lines)) if lines[i].strip() == "---") + 1
    found: list[tuple[Passage, str | None]] = []
    i = start
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                i += 1
            i += 1
            continue
        if stripped.startswith("<"):  # a raw-HTML block (a figure): skip to its blank line
            while i < len(lines) and lines[i].strip():
                i += 1
            continue
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        if stripped.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append((i + 1, lines[i]))
                i += 1
            j = i
            while j < len(lines) and not lines[j].strip():
                j += 1
            caption = lines[j] if j < len(lines) and lines[j].strip().startswith(("Source", "*Source")) else None
            for number, row in rows[2:]:
                found.append((Passage(path.name, number, row), caption))
            continue
        first = i
        block = [line]
        i += 1
        is_item = re.match(r"^\s*(?:[-*]|\d+\.)\s", line)
        while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(("|", "#", "```")):
            if is_item and re.match(r"^\s*(?:[-*]|\d+\.)\s", lines[i]):
                break
            if not is_item and re.match(r"^\s*(?:[-*]|\d+\.)\s", lines[i]):
                break
            block.append(lines[i])
            i += 1
        found.append((Passage(path.name, first + 1, " ".join(part.strip() for part in block)), None))
    return found


def unsourced(path: Path) -> list[Passage]:
    missing = []
    for passage, caption in passages(path):
        if EXEMPT.search(passage.text) or not states_product_number(passage.text):
            continue
        if is_sourced(passage.text) or (caption is not None and is_sourced(caption)):
            continue
        missing.append(passage)
    return missing


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_product_number_in_a_chapter_has_a_dated_source(path):
    missing = unsourced(path)
    assert not missing, f"{len(missing)} passages state a product number with no dated source:\n" + "\n".join(
        map(str, missing)
    )


def test_the_detector_flags_an_unsourced_product_number_and_accepts_a_dated_official_link(tmp_path):
    chapter = tmp_path / "99-probe.md"
    chapter.write_text(
        "---\ntitle: Probe\n---\n"
        "SQS keeps a message for 4 days by default.\n\n"
        "SQS keeps a message for 4 days ([SQS quotas](https://docs.aws.amazon.com/x.html), checked 2026-12-07).\n\n"
        "SQS keeps a message for 4 days ([a blog](https://example.com/sqs), checked 2026-12-07).\n\n"
        "| broker | retention |\n| --- | --- |\n| Kafka | 7 days |\n\n"
        "Sources: [Kafka configs](https://kafka.apache.org/documentation/), checked 2026-12-07.\n\n"
        "| broker | retention |\n| --- | --- |\n| Kafka | 7 days |\n\n"
        "- A cap of, say, 20 Redis keys. (Worked example: our assumptions, not product limits.)\n"
        "- Queues hold work; nothing here names a number.\n"
    )
    assert [passage.line for passage in unsourced(chapter)] == [4, 8, 18]
