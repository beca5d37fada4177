"""The delivery models in a real Chromium against real workers and consumers: one preset on two models
side by side, and a log run's live view (partitions, lag, consumers you can kill)."""

import re
import time

import pytest
from playwright.sync_api import Page, expect

from sandbox.models import Experiment
from tests.browser.test_live_view import shots
from tests.conftest import ARTIFACTS, wait_ms
from tests.sandbox.helpers import run_story
from tests.sandbox.test_views import consumers_running

pytestmark = [pytest.mark.browser, pytest.mark.workers, pytest.mark.django_db(transaction=True)]


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))  # CSP violations land here
    return errors


def outcome(page: Page, key: str) -> list[int]:
    cells = page.locator(f'tr[data-outcome="{key}"] td')
    return [int(re.sub(r"\D", "", text)) for text in cells.all_inner_texts()]


def describe_poll(at: float, response) -> str:
    """A poll's answer in a few words: its status, and what its delivery panel offered."""
    try:
        body = response.text() if response.status == 200 else ""
    except Exception as exc:  # a body Chromium no longer holds
        return f"{response.status}@{at:.1f}s (body gone: {exc.__class__.__name__})"
    found = [
        word for word in ("Kill this consumer", "no-consumers", "The run has ended", "panel-delivery") if word in body
    ]
    return f"{response.status}@{at:.1f}s {found}"


def test_ordering_on_rq_and_log_side_by_side_from_the_lab_home(live_server, page, rq_workers):
    consumers_running(rq_workers)
    errors = watch_errors(page)
    page.goto(f"{live_server.url}/sandbox/?preset=ordering")
    page.locator("#id_seed").fill("11")
    expect(page.get_by_label("Second delivery model")).to_have_value("log")  # ordering runs on RQ: log is next
    page.get_by_role("button", name="Run this on another model").click()
    page.wait_for_url(re.compile(r"/sandbox/compare/\?a=\d+&b=\d+$"))
    rq_run, log_run = Experiment.objects.order_by("pk")
    assert (rq_run.params["model"], log_run.params["model"], rq_run.seed, log_run.seed) == ("rq", "log", 11, 11)
    expect(page.locator("#compare-body")).not_to_contain_text("running", timeout=wait_ms(120_000))

    rq_violations, log_violations = outcome(page, "order_violations")
    assert rq_violations > 0
    assert log_violations == 0
    attempts = outcome(page, "attempts")
    assert min(attempts) > 40, f"{attempts}\n{run_story(rq_run.pk)}\n{run_story(log_run.pk)}"  # both retried
    expect(page.locator(f"#lag-{log_run.pk} svg[role=img] title")).to_contain_text("messages behind per partition")
    expect(page.locator(f"#lag-{rq_run.pk} svg[role=img] title")).to_contain_text("queue depth")
    expect(page.locator("#table-delivery thead .model-pill")).to_have_text(["rq", "log"])
    expect(page.locator("#h-delivery")).to_have_text("What the delivery model changed: rq vs log")
    shots(page, "delivery-compare")
    assert errors == []


def test_a_log_runs_live_view_shows_partitions_moving_when_a_consumer_is_killed(live_server, page, rq_workers):
    consumers_running(rq_workers)
    errors = watch_errors(page)
    page.goto(f"{live_server.url}/sandbox/?preset=rebalance")
    # The preset kills a consumer by itself 4 s in: off, so the visitor's kill is the one that moves partitions (under
    # load the page still offered a consumer the preset had just killed, and the kill was refused).
    page.locator("#id_kill_consumer_at_s").fill("0")
    page.get_by_role("button", name="Start experiment").click()
    page.wait_for_url(re.compile(r"/sandbox/experiments/\d+/$"))
    expect(page.locator("#run-model")).to_have_text("partitioned log")
    rows = page.locator("table.partitions tbody tr")
    expect(rows).to_have_count(4)
    expect(page.locator("#lag-figure svg[role=img] desc")).to_contain_text(
        "its lag climbs until another consumer takes it over"
    )

    polls: list = []  # each poll's answer, described if the button never shows
    page.on("response", lambda r: "/live/" in r.url and polls.append((time.monotonic() - began, r)))
    began = time.monotonic()
    kill = page.get_by_role("button", name=re.compile(r"^Kill this consumer c\d+-\d+$")).first
    try:
        expect(kill).to_be_visible(timeout=wait_ms(30_000))  # once a consumer owns a partition (slow under load)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\npolls answered: {[describe_poll(at, r) for at, r in polls]}") from None
    for _ in range(3):  # a consumer silent for 3 s has left the group: under load, between a poll and the click
        victim = kill.inner_text().split()[-1]
        kill.focus()
        page.keyboard.press("Enter")  # the keyboard reaches it like any button
        answer = re.compile(rf"Consumer {victim} will be killed|No live consumer is called {victim}")
        expect(page.locator("#lab-flash")).to_contain_text(answer, timeout=wait_ms(10_000))
        if "will be killed" in page.locator("#lab-flash").inner_text():
            break
        expect(kill).to_be_visible(timeout=wait_ms(10_000))
    else:
        pytest.fail("three consumers in a row had left the group by the time their kill arrived")
    expect(page.locator(f'[data-consumer="{victim}"]')).to_have_count(0, timeout=wait_ms(10_000))
    focused = page.evaluate("document.activeElement && document.activeElement.id")
    assert focused == "h-delivery", f"focus fell to {focused!r} when the killed consumer's button went away"
    expect(page.locator("table.events")).to_contain_text("partition moved", timeout=wait_ms(30_000))

    expect(page.locator("#h-counters")).to_contain_text("finished", timeout=wait_ms(120_000))
    assert int(page.locator("#max-lag").inner_text()) >= 3
    expect(page.locator('[data-counter="double_charges"] .n')).to_have_text("0")
    page.locator("#panel-delivery").scroll_into_view_if_needed()
    folder = ARTIFACTS / "screenshots"
    page.locator("#panel-delivery").screenshot(path=str(folder / "delivery-log-partitions.png"))
    shots(page, "delivery-log-live")
    assert errors == []


def test_a_stream_runs_live_view_shows_each_message_delivered_twice_and_its_lag(live_server, page, rq_workers):
    consumers_running(rq_workers)
    errors = watch_errors(page)
    page.goto(f"{live_server.url}/sandbox/?preset=visibility-timeout")
    page.get_by_role("button", name="Start experiment").click()
    page.wait_for_url(re.compile(r"/sandbox/experiments/\d+/$"))
    expect(page.locator("#run-model")).to_contain_text("stream")
    expect(page.locator("#h-delivery")).to_have_text("The stream and its consumers")
    expect(page.locator("#h-counters")).to_contain_text("finished", timeout=wait_ms(120_000))
    story = run_story(int(page.url.rstrip("/").rsplit("/", 1)[1]))  # what happened, should the count be off
    expect(page.locator('[data-counter="duplicates_delivered"] .n'), story).to_have_text("4")
    expect(page.locator('[data-counter="double_charges"] .n')).to_have_text("0")
    expect(page.locator("#lag-figure svg[role=img] title")).to_contain_text("published and not yet acknowledged")
    page.locator("#panel-delivery").scroll_into_view_if_needed()
    page.locator("#panel-delivery").screenshot(path=str(ARTIFACTS / "screenshots" / "delivery-stream-panel.png"))
    shots(page, "delivery-stream-live")
    assert errors == []
