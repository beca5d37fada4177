"""The workflow families in a browser (issue #26): a finished dual-write and outbox run on the real worker
pool (their deaths are real SIGKILLs), the "between the database and the broker" panel, the explanation,
the axe audit at both sizes, and screenshots.

The subject is the finished page: the browser starts the run, leaves while the pool works it (the live view
is tested in test_live_view.py), and comes back once it has finished; watching every second of a 30-60 s run
cost the browser and the live server more CPU than the rest of the test."""

import pytest
from playwright.sync_api import expect

from sandbox.models import Experiment
from tests.browser import test_accessibility as a11y
from tests.browser.test_accessibility import audit, start_run
from tests.conftest import ARTIFACTS, wait_for
from tests.sandbox.helpers import wait_finished

axe_page, content = a11y.axe_page, a11y.content  # fixtures shared with the axe audit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.mark.workers
@pytest.mark.parametrize("preset", ["dual-write", "outbox", "saga", "fan-in"])
def test_a_finished_workflow_run_shows_what_happened_between_database_and_broker(
    live_server,
    axe_page,
    rq_workers,
    content,
    preset,
):
    page = axe_page
    jobs = 6 if preset == "fan-in" else 20  # fan-in's jobs are batches of 5 children each
    pk = start_run(page, live_server.url, preset, {"jobs": jobs, "arrival_per_s": 20, "seed": 99})
    come_back_finished(page, pk, 90)
    summary = Experiment.objects.get(pk=pk).summary
    panel = page.locator("#panel-workflow")
    outcome = page.locator("#panel-outcome")
    expect(outcome.locator("dl.explain")).to_be_visible()
    if preset == "fan-in":
        expect(panel.locator("#workflow-figure svg.saga-lanes")).to_be_visible()
        expect(panel.locator('[data-counter="final_runs"] .n')).to_have_text(str(summary["final_runs"]))
        assert summary["early_finals"] > 0  # the preset closes batches naively
        expect(page.locator('#panel-lesson [data-prediction="early_finals"]')).to_be_visible()
        expect(outcome.locator("dl.explain")).to_contain_text("The final step")
        drill = "/topics/queueing/drill/workflow-orchestration/"
    elif preset == "saga":
        expect(panel.locator("#workflow-figure svg.saga-lanes")).to_be_visible()
        expect(panel.locator('[data-counter="half_done"] .n')).to_have_text("0")
        expect(panel.locator('[data-counter="compensated"] .n')).to_have_text(str(summary["compensated"]))
        expect(page.locator('#panel-lesson [data-prediction="compensated"]')).to_be_visible()
        expect(outcome.locator("dl.explain")).to_contain_text("Never half-done")
        drill = "/topics/queueing/drill/workflow-orchestration/"
    else:
        expect(panel.locator("#workflow-figure svg")).to_be_visible()
        expect(panel.locator('[data-counter="lost"] .n')).to_have_text(str(summary["lost"]))
        expect(panel.locator('[data-counter="ghosts"] .n')).to_have_text(str(summary["ghosts"]))
        expect(page.locator('#panel-lesson [data-prediction="lost"]')).to_be_visible()
        expect(outcome.locator("dl.explain")).to_contain_text("The fault plan")
        drill = "/topics/queueing/drill/transactional-outbox/"
    if preset == "dual-write":
        assert summary["lost"] > 0
        expect(panel.locator('[data-orders="lost"]')).to_contain_text("#")
    elif preset == "outbox":
        assert summary["lost"] == summary["ghosts"] == 0
        expect(panel.locator('[data-counter="relay_lag_p95_ms"]')).to_be_visible()
    links_screenshots_and_axe(page, panel, preset, drill)


@pytest.mark.workers
@pytest.mark.parametrize("preset", ["pipeline", "priority-inversion", "priority-reserved"])
def test_a_finished_pipeline_or_priority_run_shows_its_queues_and_latencies(
    live_server,
    axe_page,
    rq_workers,
    content,
    preset,
):
    """The pipeline's queues on one time axis; urgent latency beside low-priority throughput (issue #26, 4 and 5)."""
    page = axe_page
    pk = start_run(page, live_server.url, preset, {"seed": 7})
    come_back_finished(page, pk, 120)
    summary = Experiment.objects.get(pk=pk).summary
    panel = page.locator("#panel-workflow")
    outcome = page.locator("#panel-outcome")
    expect(outcome.locator("dl.explain")).to_be_visible()
    if preset == "pipeline":
        expect(panel.locator("#workflow-figure svg")).to_have_count(2)  # depth and age, one time axis
        expect(panel.locator('[data-counter="max_depth_stage3"] .n')).to_have_text(str(summary["max_depth_stage3"]))
        expect(panel.locator('[data-counter="shed"] .n')).to_have_text("0")
        expect(page.locator('#panel-lesson [data-prediction="max_depth_stage3"]')).to_be_visible()
        expect(outcome.locator("dl.explain")).to_contain_text("Where the backlog builds")
        assert summary["backlog_stage"] == 3
        drill = "/topics/queueing/drill/backpressure-load-shedding/"
    else:
        expect(panel.locator('[data-counter="urgent_p95_ms"] .n')).to_have_text(str(summary["urgent_p95_ms"]))
        expect(panel.locator('[data-counter="low_throughput"] .n')).to_have_text(str(summary["low_throughput"]))
        expect(page.locator('#panel-lesson [data-prediction="urgent_p95_ms"]')).to_be_visible()
        expect(outcome.locator("dl.explain")).to_contain_text("Low-priority throughput")
        drill = "/topics/queueing/drill/priority-and-tenant-fairness/"
    links_screenshots_and_axe(page, panel, preset, drill)


def come_back_finished(page, pk: int, timeout: float) -> None:
    """Leave the run's page, wait for the pool to finish the run, open the page again."""
    url = page.url
    page.goto("about:blank")
    wait_finished(Experiment.objects.get(pk=pk), timeout)
    wait_for(lambda: Experiment.objects.get(pk=pk).status != Experiment.Status.RUNNING, 30, message="its row")
    page.goto(url)
    expect(page.locator("#panel-counters")).to_contain_text("finished")


def links_screenshots_and_axe(page, panel, preset: str, drill: str) -> None:
    """What every family's finished page shares: its drill and Study links, desktop and phone screenshots of the
    page and of its panel, and no serious or critical axe violation."""
    expect(page.get_by_role("link", name="Practise the interview question")).to_have_attribute("href", drill)
    expect(page.get_by_role("link", name="Read why")).to_be_visible()
    shots = ARTIFACTS / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for name, size in SIZES.items():
        page.set_viewport_size(size)
        page.wait_for_timeout(150)
        page.locator("#panel-outcome").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"lab-{preset}-{name}.png"))
        panel.screenshot(path=str(shots / f"lab-{preset}-{name}-panel.png"))
    failures = audit(page, f"lab-{preset}")
    assert not failures, "axe found serious or critical violations:\n" + "\n".join(failures)
