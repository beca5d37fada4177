"""What survives when Redis stops, restarts or crashes (real processes, bounded in time)."""

import time

import pytest
from django.core.management import call_command
from django.urls import reverse

from sandbox.models import LedgerEntry
from tests.sandbox.helpers import FAST, start, wait_finished, wait_state


@pytest.mark.django_db
def test_with_redis_down_study_and_drills_answer_200_and_the_lab_503(client, redis_control):
    call_command("load_content", verbosity=0)
    redis_control.stop()
    for url in ("/", "/topics/", "/topics/queueing/", "/search/?q=jitter", "/drills/", "/topics/queueing/drill/"):
        assert client.get(url, follow=True).status_code == 200, url  # /topics/ redirects to the one topic
    lab = client.get(reverse("sandbox:home"))
    assert lab.status_code == 503
    assert b"Redis is not answering" in lab.content
    fragment = client.get(reverse("sandbox:home"), headers={"HX-Request": "true"})
    assert fragment.status_code == 503
    assert b"<html" not in fragment.content
    assert client.get("/healthz").status_code == 503


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_workers_and_the_scheduler_come_back_after_a_redis_restart(rq_workers, redis_control):
    redis_control.stop()
    time.sleep(3)
    redis_control.start()
    # A retry needs the scheduler: this finishes only if workers and scheduler recovered by themselves.
    experiment = start(
        "poison", jobs=2, max_retries=1, backoff="fixed", backoff_base_s=1, backoff_cap_s=1, jitter="none", **FAST
    )
    state = wait_finished(experiment, 60)
    assert state.counters["attempts"] == 4
    assert state.counters["dead_lettered"] == 2


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_jobs_enqueued_before_a_redis_crash_survive_with_aof_everysec(rq_workers, redis_control):
    experiment = start(
        "happy",
        jobs=6,
        concurrency=1,
        duration_ms=1500,
        duration_spread_ms=0,
        timeout_s=10,
        max_retries=3,
        backoff="fixed",
        backoff_base_s=1,
        jitter="none",
    )
    wait_state(experiment, lambda s: s.counters["attempts"] >= 1, 20, "the first job to start")
    time.sleep(1.5)  # everything enqueued is now more than a second old: fsynced by appendfsync everysec
    redis_control.stop(crash=True)
    time.sleep(1)
    redis_control.start()
    state = wait_finished(experiment, 120)
    assert state.counters["enqueued"] == 6
    assert state.counters["succeeded"] == 6
    assert LedgerEntry.objects.filter(experiment=experiment).values("order_number").distinct().count() == 6
    assert state.accounting_holds()
