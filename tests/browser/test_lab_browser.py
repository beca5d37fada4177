"""The Lab in a real Chromium against real workers: start, watch live without reloading, redrive, crash."""

import re
import time

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from sandbox.engine import experiments, live
from sandbox.engine.presets import PRESETS
from sandbox.models import Experiment
from tests.conftest import ARTIFACTS, STOP_SAID, wait_ms
from tests.sandbox.helpers import anonymous_visitor, wait_finished

pytestmark = [pytest.mark.browser, pytest.mark.workers, pytest.mark.django_db(transaction=True)]


def panel_shot(page: Page, panel: str, name: str) -> None:
    """A close-up of one panel next to the full-page screenshots, to check charts are legible."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.locator(f"#{panel}").screenshot(path=str(folder / f"{name}.png"))


def counter(page: Page, name: str):
    return page.locator(f'[data-counter="{name}"] .n')


def start_from_form(page: Page, base: str, preset: str, prediction: str = "", **params) -> None:
    page.goto(f"{base}/sandbox/?preset={preset}")
    if prediction:
        page.get_by_label("Why you expect that").fill(prediction)
    for name, value in params.items():
        page.locator(f"#id_{name}").fill(str(value))
    page.get_by_role("button", name="Start experiment").click()
    page.wait_for_url(re.compile(r"/sandbox/experiments/\d+/$"))


def test_poison_run_fills_the_dlq_live_and_redrive_all_runs_the_jobs_again(live_server, page, screenshot, rq_workers):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))  # CSP violations land here
    start_from_form(
        page, live_server.url, "poison", prediction="All 4 end in the DLQ after 3 attempts each.",
        jobs=4, max_retries=2, backoff_base_s=1, backoff_cap_s=2, duration_ms=50, duration_spread_ms=0,
    )  # fmt: skip
    page.evaluate("window.__marker = 1")
    page.locator("details.job-list summary").click()  # the job list under the time axis
    expect(page.locator("#dlq-count")).to_have_text("4", timeout=wait_ms(40_000))
    rows = page.locator(".timeline .tl-row")
    expect(rows).to_have_count(4)
    for i in range(4):
        expect(rows.nth(i)).to_have_attribute("data-attempts", "3")
        expect(rows.nth(i).locator(".mark-error")).to_have_count(3)
    expect(page.locator(".tl-plan").first).to_contain_text("retries after")
    expect(page.locator("#panel-lesson")).to_contain_text("All 4 end in the DLQ")
    expect(page.locator("#panel-outcome")).to_contain_text("DLQ share")
    assert page.evaluate("window.__marker") == 1, "the page reloaded"
    screenshot("lab-poison-dlq")

    page.locator("#redrive-all").click()
    expect(counter(page, "redriven")).to_have_text("4", timeout=wait_ms(10_000))
    expect(page.locator("#lab-flash")).to_contain_text("Redrove 4 jobs")
    expect(page.locator(".timeline .mark-redriven")).to_have_count(4, timeout=wait_ms(10_000))
    screenshot("lab-poison-redriving")
    expect(page.locator("#dlq-count")).to_have_text("4", timeout=wait_ms(40_000))
    for i in range(4):
        expect(rows.nth(i)).to_have_attribute("data-attempts", "6", timeout=wait_ms(10_000))
    assert page.evaluate("window.__marker") == 1, "the page reloaded"
    screenshot("lab-poison-redriven")
    panel_shot(page, "panel-charts", "lab-poison-charts")
    panel_shot(page, "panel-timeline", "lab-poison-timeline")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("lab-poison-phone")
    for panel in ("panel-counters", "panel-charts", "panel-timeline", "panel-dlq", "panel-workers", "panel-events"):
        panel_shot(page, panel, f"lab-phone-{panel}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert errors == []


def test_crash_its_worker_kills_the_running_job_and_it_is_retried(live_server, page, screenshot, rq_workers):
    # The jobs outlast the click by far (at 6 s, under load, a job had ended before its click arrived) but not RQ's job
    # timeout: only the crash may cause a retry.
    start_from_form(
        page, live_server.url, "crash", jobs=2, crash_rate=0, duration_ms=10_000, duration_spread_ms=0, timeout_s=30
    )
    page.evaluate("window.__marker = 1")
    crash = page.get_by_role("button", name="Crash its worker").first
    expect(crash).to_be_visible(timeout=wait_ms(20_000))
    screenshot("lab-crash-running")
    crash.click()
    expect(page.locator("svg.lanes .lane-bar.mark-crash").first).to_be_visible(timeout=wait_ms(15_000))
    page.locator("details.job-list summary").click()
    expect(page.locator(".timeline .mark-crash").first).to_be_visible()
    expect(counter(page, "crashes")).to_have_text("1")
    expect(counter(page, "retries")).to_have_text("1")
    expect(page.locator(".timeline")).to_contain_text("SIGKILL")
    assert page.evaluate("window.__marker") == 1, "the page reloaded"
    screenshot("lab-crash-crashed")
    page.get_by_role("button", name="Stop experiment").click()
    expect(page.locator("#lab-flash")).to_contain_text(STOP_SAID)
    # Leave the shared workers idle for the tests after this one.
    experiment = Experiment.objects.get(pk=int(page.url.rstrip("/").split("/")[-1]))
    for job in live.read(experiment.pk).running:
        experiments.job_stop(experiment, job)
    wait_finished(experiment, 30)
    expect(page.locator("#h-counters")).to_contain_text("finished", timeout=wait_ms(10_000))


def test_lab_home_and_phone_layout(live_server, page, screenshot):
    page.goto(f"{live_server.url}/sandbox/")
    expect(page.get_by_role("heading", name="Queue lab")).to_be_visible()
    screenshot("lab-home")
    page.goto(f"{live_server.url}/sandbox/?preset=flaky")
    expect(page.locator("#id_failure_rate")).to_be_visible()
    screenshot("lab-home-customise")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("lab-home-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_live_view_shows_a_banner_while_redis_is_down_and_recovers_by_itself(
    live_server, page, screenshot, client, redis_control, rq_workers
):
    # A run whose one job was never enqueued: it stays "running", so the page keeps polling.
    owner = anonymous_visitor(client)
    experiment = Experiment.objects.create(
        **owner.owner(), preset="happy", params=PRESETS["happy"].parameters(), seed=1
    )
    recorder = live.Recorder(experiment.pk)
    recorder.create(params=experiment.params, seed=1, requested=1)
    recorder.admitted(arrivals={1: time.time()}, rejected=0, schedule={1: []})
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])
    page.goto(f"{live_server.url}/sandbox/experiments/{experiment.pk}/")
    page.evaluate("window.__marker = 1")
    expect(page.locator("#h-counters")).to_contain_text("running")
    redis_control.stop()
    try:
        expect(page.locator("#lab-banner-slot #redis-banner")).to_be_visible(timeout=wait_ms(10_000))
        screenshot("lab-redis-down")
    finally:
        redis_control.start()
    expect(page.locator("#redis-banner")).to_have_count(0, timeout=wait_ms(15_000))
    assert page.evaluate("window.__marker") == 1, "the page reloaded"


def test_history_ticks_two_experiments_and_compares_them(live_server, page, screenshot, client):
    owner = anonymous_visitor(client)
    for jobs, dead in ((12, 12), (12, 3)):
        params = {**PRESETS["poison"].parameters(), "jobs": jobs, "poison_rate": dead / jobs}
        summary = {name: 0 for name in live.COUNTERS} | {"requested": jobs, "dead_lettered": dead, "p95_ms": 900.0}
        summary["succeeded"] = jobs - dead
        Experiment.objects.create(
            **owner.owner(), preset="poison", params=params, seed=1,
            status=Experiment.Status.FINISHED, summary=summary,
        )  # fmt: skip
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])
    page.goto(f"{live_server.url}/sandbox/experiments/")
    boxes = page.get_by_role("checkbox")
    expect(boxes).to_have_count(2)
    boxes.nth(0).check()
    boxes.nth(1).check()
    screenshot("lab-history")
    page.get_by_role("button", name="Compare the two ticked").click()
    expect(page.get_by_role("heading", name="Compare experiments")).to_be_visible()
    expect(page.locator("tr.differs").filter(has_text="poison_rate")).to_have_count(1)
    expect(page.locator("tr.differs").filter(has_text="dead-lettered")).to_have_count(1)
    screenshot("lab-compare")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("lab-compare-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
