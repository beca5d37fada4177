"""The broker guarantee matrix and the cheat sheet (issue #24): own URLs, linked from the chapters that cite a
broker, found by search, and the cheat sheet prints on at most two A4 pages."""

import re
from pathlib import Path

import pytest
from django.urls import reverse

from tests.conftest import ARTIFACTS
from topics.search import search

CONTENT = Path(__file__).resolve().parents[2] / "topics" / "content" / "queueing"
BROKER = re.compile(r"\b(Kafka|RabbitMQ|SQS|Redis Streams|Kinesis|Pub/Sub)\b")
MATRIX_COLUMNS = [
    "Kafka, classic consumer group", "Kafka share group", "Kinesis Data Streams", "Redis Streams",
    "Google Cloud Pub/Sub", "RabbitMQ classic queue", "RabbitMQ quorum queue", "SQS standard", "SQS FIFO", "RQ",
]  # fmt: skip
MATRIX_ROWS = [
    "A publish acknowledgement means", "Acknowledged but still lost when", "Durability knob",
    "Consumer acknowledgement and lease", "What triggers redelivery", "Poison counter", "Dead-letter queue",
    "Ordering unit", "Size, in flight, throughput", "Retention and replay",
]  # fmt: skip


def url(slug: str) -> str:
    return reverse("topics:section", args=["queueing", slug])


def test_the_matrix_has_a_column_per_broker_and_a_row_per_question(client, queueing):
    html = client.get(url("broker-matrix")).content.decode()
    headers = re.findall(r"<th[^>]*>(.*?)</th>", html)
    for column in MATRIX_COLUMNS:
        assert any(header.startswith(column) for header in headers), column
    for row in MATRIX_ROWS:
        # Each question is asked of both halves of the matrix (queues, then logs and streams).
        assert html.count(f"<td>{row}</td>") == 2, row


def test_every_chapter_that_names_a_broker_links_to_the_matrix():
    for path in sorted((CONTENT / "sections").glob("*.md")):
        if path.stem.endswith(("broker-matrix", "cheat-sheet")):
            continue
        body = path.read_text(encoding="utf-8").split("---", 2)[2]
        if BROKER.search(body):
            assert "](section:broker-matrix" in body, f"{path.name} cites a broker but does not link the matrix"


@pytest.mark.parametrize(
    ("query", "slug"),
    [
        ("broker guarantee matrix", "broker-matrix"),
        ("acknowledged but still lost", "broker-matrix"),
        ("poison counter", "broker-matrix"),
        ("cheat sheet", "cheat-sheet"),
        ("defaults and limits", "cheat-sheet"),
    ],
)
def test_the_reference_pages_are_found_by_search(queueing, query, slug):
    hits = search(query)
    assert any(hit.url.startswith(url(slug)) for hit in hits[:3]), [hit.url for hit in hits[:3]]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_cheat_sheet_prints_on_at_most_two_a4_pages_and_both_pages_fit_a_phone(live_server, browser, queueing):
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        for slug in ("broker-matrix", "cheat-sheet"):
            page.goto(live_server.url + url(slug))
            # Nothing but the tables' own scroll regions may be wider than the screen.
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{slug} overflows by {overflow}px at {width}px"
            page.screenshot(path=str(folder / f"reference-{slug}-{width}.png"), full_page=width == 390)
        if width == 1280:
            page.goto(live_server.url + url("cheat-sheet"))
            pdf = page.pdf(format="A4", print_background=False)
            (folder / "cheat-sheet.pdf").write_bytes(pdf)
            pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
            print(f"\ncheat sheet: {pages} A4 pages")
            assert 1 <= pages <= 2, f"the cheat sheet prints on {pages} A4 pages"
            # What the paper shows, for a reviewer's eyes (the PDF itself is in artifacts/ too).
            page.emulate_media(media="print")
            page.set_viewport_size({"width": 794, "height": 1123})
            page.screenshot(path=str(folder / "reference-cheat-sheet-print.png"), full_page=True)
        context.close()


def test_every_chapter_opens_with_a_probe_senior_staff_box():
    for path in sorted((CONTENT / "sections").glob("*.md")):
        body = path.read_text(encoding="utf-8").split("---", 2)[2].lstrip()
        box = body.split("\n\n", 1)[0]
        assert box.startswith("> **Probe:**"), f"{path.name} does not open with the probe box"
        assert "**Senior:**" in box, path.name
        assert "**Staff:**" in box, path.name


LAB_DEPTH = "Lab depth, optional for interviews"
RQ_INTERNALS = re.compile(
    r"`rq:|FailedJobRegistry|StartedJobRegistry|ScheduledJobRegistry|retries_left|Retry\(max|requeue\("
)


def test_rq_only_implementation_detail_is_marked_as_lab_depth():
    """A paragraph or list item that spells RQ's internals (its Redis keys, registries, retry fields) sits in a
    chapter or section that says it is Lab depth, so a reader short of time knows to skip it. Tables are
    exempt: a comparison row naming RQ's mechanism is interview material."""
    unmarked = []

    def blocks(text: str) -> list[str]:
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        return [b.strip() for b in re.split(r"\n\s*\n|\n(?=\s*(?:[-*]|\d+\.) )", prose) if b.strip()]

    def opens_marked(text: str) -> bool:
        """The first paragraph after the heading (or after the chapter's probe box) starts with the label."""
        first = [b for b in blocks(text) if not b.startswith(("###", ">"))][:1]
        return bool(first) and first[0].startswith(f"**{LAB_DEPTH}")

    for path in sorted((CONTENT / "sections").glob("*.md")):
        body = path.read_text(encoding="utf-8").split("---", 2)[2]
        if opens_marked(body.split("\n###", 1)[0]):
            continue
        for section in re.split(r"\n(?=### )", body):
            if opens_marked(section):
                continue
            for block in blocks(section):
                if not block.startswith("|") and RQ_INTERNALS.search(block) and LAB_DEPTH not in block:
                    unmarked.append(f"{path.name}: {block[:100]}")
    assert not unmarked, "\n".join(unmarked)
