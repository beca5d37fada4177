"""One visitor across log-in: experiments run anonymously follow the visitor into their account."""

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from sandbox.models import Experiment
from tests.conftest import STOP_SAID, wait_ms

pytestmark = [pytest.mark.browser, pytest.mark.workers, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-enough-passphrase-42"
FAST = {"jobs": 3, "duration_ms": 50, "duration_spread_ms": 0}
# Keeps running ~40 s: Stop must find jobs still queued however slowly the journey before it went (under load a
# 12 s run had started its last job by the time Stop was pressed, and nothing was left to stop).
SLOW = {"jobs": 10, "concurrency": 1, "duration_ms": 4000, "duration_spread_ms": 0}


def start(page: Page, base: str, **params) -> int:
    page.goto(f"{base}/sandbox/?preset=happy")
    for name, value in params.items():
        page.locator(f"#id_{name}").fill(str(value))
    page.get_by_role("button", name="Start experiment").click()
    page.wait_for_url(re.compile(r"/sandbox/experiments/\d+/$"))
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def run_two_anonymously(page: Page, base: str) -> tuple[int, int]:
    finished = start(page, base, **FAST)
    expect(page.locator("#h-counters")).to_contain_text("finished", timeout=wait_ms(30_000))
    running = start(page, base, **SLOW)
    expect(page.locator("#h-counters")).to_contain_text("running")
    return finished, running


def history_shows(page: Page, base: str, *ids: int) -> None:
    page.goto(f"{base}/sandbox/experiments/")
    for pk in ids:
        expect(page.get_by_role("link", name=f"#{pk}", exact=True)).to_be_visible()


def stop_and_see_it_end(page: Page, base: str, pk: int) -> None:
    page.goto(f"{base}/sandbox/experiments/{pk}/")
    page.get_by_role("button", name="Stop experiment").click()
    expect(page.locator("#lab-flash")).to_contain_text(STOP_SAID)
    expect(page.locator("#h-counters")).to_contain_text("finished", timeout=wait_ms(30_000))
    expect(page.locator('[data-counter="stopped"] .n')).not_to_have_text("0")


def log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    expect(page.locator(".nav-user")).to_have_text(username)


def second_browser_sees(browser: Browser, base: str, username: str, *ids: int) -> None:
    context = browser.new_context()
    try:
        other = context.new_page()
        log_in(other, base, username)
        history_shows(other, base, *ids)
        for pk in ids:
            assert other.goto(f"{base}/sandbox/experiments/{pk}/").status == 200
    finally:
        context.close()


def test_experiments_run_before_signing_up_follow_the_visitor_and_stay_stoppable(
    live_server, page, browser, screenshot, rq_workers
):
    base = live_server.url
    finished, running = run_two_anonymously(page, base)

    page.goto(f"{base}/accounts/signup/")
    page.fill("input[name=username]", "lab-learner")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("main button[type=submit]")
    expect(page.locator(".nav-user")).to_have_text("lab-learner")

    history_shows(page, base, finished, running)
    screenshot("visitor-history-after-signup")
    stop_and_see_it_end(page, base, running)
    assert set(Experiment.objects.filter(user__username="lab-learner").values_list("pk", flat=True)) == {
        finished,
        running,
    }
    second_browser_sees(browser, base, "lab-learner", finished, running)


def test_experiments_run_before_logging_in_follow_the_visitor_and_stay_stoppable(
    live_server, page, browser, django_user_model, rq_workers
):
    django_user_model.objects.create_user("returning", password=PASSWORD)
    base = live_server.url
    finished, running = run_two_anonymously(page, base)

    log_in(page, base, "returning")
    history_shows(page, base, finished, running)
    stop_and_see_it_end(page, base, running)
    second_browser_sees(browser, base, "returning", finished, running)
