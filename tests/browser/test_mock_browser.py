"""Mock interviews in a browser (issue #23): a curveball interrupts on time, politely; the per-phase sketch.

The page's clock is Playwright's (page.clock), moved forward instead of waited for; the server's clock is the
mock's start, moved back by the same amount, so both agree a curveball is due without anyone waiting minutes.
"""

from datetime import timedelta

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from tests.conftest import ARTIFACTS, wait_for, wait_ms
from topics.drills.models import MockInterview
from topics.models import Question

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
QUESTION = "partial-outages"  # interrupted by its own first follow-up, then two of the topic's curveballs


@pytest.fixture
def content(db):
    if not Question.objects.exists():
        call_command("load_content")
    return Question.objects.all()


def shoot(page: Page, name: str, locator=None) -> None:
    """Desktop and phone screenshots of the viewport, `locator` scrolled into view."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, size in (("", DESKTOP), ("-phone", PHONE)):
        page.set_viewport_size(size)
        if locator is not None:
            locator.evaluate("el => el.scrollIntoView({block: 'center'})")
        page.screenshot(path=str(folder / f"{name}{suffix}.png"))
    page.set_viewport_size(DESKTOP)


def start_mock(page: Page, base: str) -> MockInterview:
    page.goto(f"{base}/drills/mock/")
    page.select_option("select[name=question]", str(Question.objects.get(slug=QUESTION).pk))
    page.click("main button[type=submit]")
    page.wait_for_selector("[data-mock-clock]:not([hidden])")
    return MockInterview.objects.get()


def move_server_clock(mock: MockInterview, *, to_s: float) -> None:
    """The server's elapsed time becomes `to_s` (as if the interview had started that long ago)."""
    mock.refresh_from_db()
    mock.started_at -= timedelta(seconds=to_s - mock.elapsed_s())
    mock.save(update_fields=["started_at"])


def first_curveball_s(mock: MockInterview) -> int:
    return mock.curveball_schedule_s(3)[0]


def test_a_curveball_interrupts_on_time_without_taking_the_answer_being_typed(live_server, page, content):
    page.set_viewport_size(DESKTOP)
    page.clock.install()
    mock = start_mock(page, live_server.url)
    first = first_curveball_s(mock)
    move_server_clock(mock, to_s=first - 30)
    page.reload()
    expect(page.locator("#curveballs")).to_contain_text("3 curveballs, the first at 37:00")
    expect(page.get_by_role("alertdialog")).to_have_count(0)

    notes = page.locator("#notes-failure_modes")
    notes.click()
    page.keyboard.type("Wrap-up: the trade-offs are")
    move_server_clock(mock, to_s=first + 1)
    page.clock.fast_forward(31_000)  # the page's timer reaches 37:01

    popup = page.get_by_role("alertdialog", name="The interviewer interrupts")
    expect(popup).to_be_visible(timeout=wait_ms(5_000))
    expect(popup).to_contain_text(mock.question.followups[0])
    expect(page.locator("#curveball-announcer")).to_contain_text(
        f"The interviewer interrupts: “{mock.question.followups[0]}”"
    )
    expect(notes).to_be_focused()  # typing goes on where it was
    page.keyboard.type(" cost and latency")
    expect(notes).to_have_value("Wrap-up: the trade-offs are cost and latency")
    expect(page.locator("#curveball-0")).to_contain_text("not acknowledged yet")
    shoot(page, "mock-curveball-popup", notes)  # the answer being typed stays in view beside the pop-up

    page.keyboard.press("Escape")  # "Later": acknowledged, and back to the answer in progress
    expect(popup).to_have_count(0)
    expect(notes).to_be_focused()
    expect(page.locator("#curveball-0")).to_contain_text("acknowledged at 37:0")
    mock.refresh_from_db()
    log = mock.curveball_log["curveball-0"]
    assert log["arrived_s"] >= first
    assert log["acknowledged_s"] >= log["arrived_s"]
    expect(page.locator("#curveballs")).to_contain_text("2 more curveballs to come: the next interrupts at 40:00")


def test_a_curveball_takes_focus_from_someone_not_typing_and_leads_to_its_answer_box(live_server, page, content):
    page.set_viewport_size(DESKTOP)
    page.clock.install()
    mock = start_mock(page, live_server.url)
    first = first_curveball_s(mock)
    move_server_clock(mock, to_s=first - 10)
    page.reload()
    page.locator("body").click(position={"x": 5, "y": 5})
    move_server_clock(mock, to_s=first + 1)
    page.clock.fast_forward(11_000)
    answer_now = page.get_by_role("button", name="Answer it now")
    expect(answer_now).to_be_focused(timeout=wait_ms(5_000))
    page.keyboard.press("Enter")
    expect(page.locator("#notes-curveball-0")).to_be_focused()
    expect(page.get_by_role("alertdialog")).to_have_count(0)
    page.keyboard.type("Pause consumption behind a circuit breaker; retries would only add load.")
    expect(page.locator("#status-curveball-0")).to_contain_text("Saved at", timeout=wait_ms(5_000))
    wait_for(lambda: "acknowledged_s" in MockInterview.objects.get().curveball_log.get("curveball-0", {}), 5)


def test_without_javascript_a_reload_after_its_time_shows_the_curveball_inline(live_server, browser, content):
    context = browser.new_context(java_script_enabled=False, viewport=DESKTOP)
    page = context.new_page()
    try:
        mock = start_mock_without_js(page, live_server.url)
        move_server_clock(mock, to_s=first_curveball_s(mock) + 5)
        page.reload()
        expect(page.locator("#curveball-0")).to_contain_text(mock.question.followups[0])
        expect(page.get_by_role("alertdialog")).to_be_visible()
        page.get_by_role("button", name="Later").click()
        expect(page.get_by_role("alertdialog")).to_have_count(0)
        expect(page.locator("#curveball-0")).to_contain_text("acknowledged at")
    finally:
        context.close()


def start_mock_without_js(page: Page, base: str) -> MockInterview:
    page.goto(f"{base}/drills/mock/")
    page.select_option("select[name=question]", str(Question.objects.get(slug=QUESTION).pk))
    page.click("main button[type=submit]")
    expect(page.locator("#phase-requirements")).to_be_visible()
    return MockInterview.objects.get()


def add_box(page: Page, phase: str, label: str) -> None:
    field = page.locator(f"#box-label-{phase}")
    field.focus()
    page.keyboard.type(label)
    page.keyboard.press("Enter")


def test_a_sketch_built_with_the_keyboard_then_a_box_dragged_with_the_mouse(live_server, page, content):
    page.set_viewport_size(DESKTOP)
    mock = start_mock(page, live_server.url)
    sketch = page.locator("#sketch-high_level")
    for label in ("API", "Orders queue", "Charge worker"):
        add_box(page, "high_level", label)
        expect(sketch.locator("g.sketch-box")).to_have_count(["API", "Orders queue", "Charge worker"].index(label) + 1)
    expect(page.locator("#mock-announcer")).to_contain_text("Sketch saved. Boxes: API, Orders queue, Charge worker.")

    page.locator("#arrow-from-high_level").focus()
    page.keyboard.press("Tab")  # to "to", which starts at the second box
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # Connect API → Orders queue
    expect(sketch.locator("line.sketch-arrow")).to_have_count(1)
    page.locator("#arrow-from-high_level").select_option(label="Orders queue")
    page.locator("#arrow-to-high_level").select_option(label="Charge worker")
    sketch.get_by_role("button", name="Connect").click()
    expect(sketch.locator("line.sketch-arrow")).to_have_count(2)
    expect(sketch).to_contain_text("Arrow: Orders queue → Charge worker")
    expect(sketch.get_by_role("img")).to_have_accessible_description(
        "Boxes: API, Orders queue, Charge worker. Arrows: API → Orders queue, Orders queue → Charge worker."
    )

    worker = sketch.locator("g.sketch-box", has_text="Charge worker")
    worker.scroll_into_view_if_needed()
    before, start_y = worker.bounding_box(), worker.get_attribute("data-y")
    page.mouse.move(before["x"] + 20, before["y"] + 20)
    page.mouse.down()
    page.mouse.move(before["x"] + 120, before["y"] + 160, steps=8)
    page.mouse.up()
    # The server saved the drop and redrew the sketch, arrows and all.
    expect(sketch.locator("g.sketch-box", has_text="Charge worker")).not_to_have_attribute("data-y", start_y)
    moved = next(
        b for b in MockInterview.objects.get().sketches["high_level"]["boxes"] if b["label"] == "Charge worker"
    )
    assert moved["y"] > int(start_y) + 60  # where it was dropped, in the drawing's units
    page.reload()
    after = page.locator("#sketch-high_level g.sketch-box", has_text="Charge worker")
    expect(after).to_have_attribute("data-y", str(moved["y"]))  # and it stays there
    shoot(page, "mock-sketch", page.locator("#sketch-high_level"))
    assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert mock.pk


def test_without_javascript_the_sketch_forms_post_and_redirect(live_server, browser, content):
    context = browser.new_context(java_script_enabled=False, viewport=DESKTOP)
    page = context.new_page()
    try:
        start_mock_without_js(page, live_server.url)
        for label in ("Producer", "Broker"):
            page.locator("#box-label-requirements").fill(label)
            page.locator("#sketch-requirements").get_by_role("button", name="Add box").click()
        sketch = page.locator("#sketch-requirements")
        sketch.get_by_role("button", name="Connect").click()
        expect(sketch.locator("line.sketch-arrow")).to_have_count(1)
        page.locator("#box-label-requirements").fill("x" * 40)
        page.locator("#box-label-requirements").evaluate("el => el.removeAttribute('maxlength')")
        page.locator("#box-label-requirements").fill("y" * 45)
        sketch.get_by_role("button", name="Add box").click()
        expect(page.locator("#sketch-requirements [role=alert]")).to_contain_text(
            "A box's name is at most 40 characters (this one has 45)."
        )
    finally:
        context.close()
