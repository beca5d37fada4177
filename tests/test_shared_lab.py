"""The shared Lab under a hostile visitor: one test per attack found (issue #12), on real workers and Redis.

Each was a way one visitor could lock, starve or break the Lab for everyone else; each test drives the
real views (or the real CLI, or a real worker process) and checks what other visitors see.
(Log-in throttling, imports and drill-answer limits: tests/test_accounts_abuse.py. A janitor killed or
hung under the real run stack: tests/test_devstack.py.)
"""

import os
import re
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rq import Worker
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from prepsite.redis_conn import get_redis
from prepsite.visitor import ADDRESS_CEILING_TIMES
from sandbox.engine import experiments, limits, live, rq_storage
from sandbox.engine import outcome as run_outcome
from sandbox.engine.budget import HORIZON_S, MAX_WORKER_SECONDS
from sandbox.engine.presets import PRESETS
from sandbox.liveview import readmodel
from sandbox.models import Experiment, LedgerEntry
from tests.conftest import BASE_DIR, wait_for
from tests.sandbox.helpers import lab_form, start, started_id, together, visitor_from, wait_finished, wait_state

HX = {"HTTP_HX_REQUEST": "true"}


def lab_jobs_of(experiment_id: int) -> list[str]:
    return [key.decode() for key in get_redis().scan_iter(f"rq:job:lab-{experiment_id}-*", count=10_000)]


# ---------------------------------------------------------------- 1. schedules are bounded


@pytest.mark.django_db
def test_a_run_scheduled_for_years_is_refused_with_the_horizon_named(client):
    response = client.post(
        reverse("sandbox:start"),
        lab_form(jobs=500, queue_cap=500, arrival_per_s="0.000001", duration_ms=0, duration_spread_ms=0, max_retries=0),
    )
    assert response.status_code == 400
    assert f"every experiment must fit in {HORIZON_S // 60} minutes" in response.content.decode()
    assert not Experiment.objects.exists()
    tiny = client.post(reverse("sandbox:start"), lab_form(jobs=5, arrival_per_s="1e-300"))
    assert tiny.status_code == 400  # was a 500: 1 / 1e-300 overflowed timedelta


def test_stopping_takes_scheduled_jobs_off_the_schedule_at_once(lab_engine):
    experiment = start("happy", jobs=20, arrival_per_s=0.5, duration_ms=20, duration_spread_ms=0)
    lab_engine.run_until(lambda: live.read(experiment.pk).counters["attempts"] >= 1)
    taken = experiments.experiment_stop(experiment)
    assert taken == 19  # every arrival still on the schedule
    scheduled = ScheduledJobRegistry(queue=rq_storage.lab_queue()).get_job_ids(cleanup=False)
    assert not [job_id for job_id in scheduled if job_id.startswith(f"lab-{experiment.pk}-")]
    state = live.read(experiment.pk)
    assert state.finished  # at once, not after ~40 s of arrivals
    c = state.counters
    assert c["stopped"] == taken
    assert c["enqueued"] == c["succeeded"] + c["dead_lettered"] + c["stopped"]


def test_no_job_can_outlive_its_experiments_record(lab_engine):
    experiment = start("happy", jobs=3, arrival_per_s=0.2, duration_ms=20)
    redis = get_redis()
    record_ttl = redis.ttl(live.key(experiment.pk, "c"))
    waiting = Job.fetch(live.job_id_for(experiment.pk, 3), connection=redis)
    assert waiting.ttl == live.JOB_TTL_SECONDS
    assert HORIZON_S < live.JOB_TTL_SECONDS < record_ttl <= live.TTL_SECONDS
    assert experiments.experiment_stop(experiment) == 3
    assert live.read(experiment.pk).finished


# ---------------------------------------------------------------- 2. fair share, and caps that count everything


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_a_small_run_beside_a_hog_gets_its_fair_share_of_workers(rq_workers):
    hog, newcomer = visitor_from("198.51.100.1"), visitor_from("198.51.100.2")
    hog_runs = [
        started_id(
            hog.post(
                reverse("sandbox:start"),
                lab_form(jobs=90, queue_cap=90, duration_ms=10_000, duration_spread_ms=0, max_retries=0, concurrency=8),
            )
        )
        for _ in range(3)
    ]
    try:
        wait_for(all_busy, 20, message="the hog to fill every live worker")
    except pytest.fail.Exception as exc:
        everyone = {w.name: (w.get_state(), w.last_heartbeat) for w in Worker.all(connection=get_redis())}
        pytest.fail(f"{exc}: live {live_workers()}, registered {everyone}, granted {limits_granted()}")
    small = Experiment.objects.get(pk=started_id(newcomer.post(reverse("sandbox:start"), lab_form(jobs=20))))
    assert limits_granted() == {"hog": 1, "newcomer": 1}  # two workers, two visitors: one each, at once
    state = wait_finished(small, 60)
    assert state.counters["succeeded"] == 20
    # It finished while the hog still had hours of work waiting: before fair share it made no progress
    # until the hog's 270 ten-second jobs were done.
    for pk in hog_runs:
        assert not live.read(pk).finished
    for pk in hog_runs:
        experiments.experiment_stop(Experiment.objects.get(pk=pk))


def all_busy() -> bool:
    """Every live worker busy. A killed worker stays registered, silent, until its key expires: the fair share
    does not count it (sandbox.engine.fairshare.live_workers), and nor does this."""
    live = live_workers()
    return bool(live) and all(state == "busy" for state, _ in live.values())


def live_workers() -> dict[str, tuple[str, float]]:
    """name -> (state, seconds since its heartbeat) of the workers the fair share counts."""
    from datetime import UTC, datetime

    from sandbox.engine.fairshare import FRESH_WORKER_SECONDS

    now, found = datetime.now(UTC), {}
    for worker in Worker.all(connection=get_redis()):
        age = (now - worker.last_heartbeat).total_seconds() if worker.last_heartbeat else float("inf")
        if age < FRESH_WORKER_SECONDS:
            found[worker.name] = (worker.get_state(), round(age, 1))
    return found


def limits_granted() -> dict:
    """The concurrency RQ enforces for each visitor right now (0 for one with no run yet)."""
    from sandbox.engine.fairshare import rate_key

    redis, granted = get_redis(), {}
    for name, address in (("hog", "198.51.100.1"), ("newcomer", "198.51.100.2")):
        key = Experiment.objects.filter(address_key=f"ip:{address}").values_list("limit_key", flat=True).first()
        granted[name] = int(redis.hget(f"rq:rl:{rate_key(key)}", "concurrency") or 0) if key else 0
    return granted


def test_the_global_job_cap_counts_jobs_held_back_by_a_concurrency_limit(lab_engine, monkeypatch):
    hog = visitor_from("198.51.100.3")
    started_id(hog.post(reverse("sandbox:start"), lab_form(jobs=200, queue_cap=200, duration_ms=2000, max_retries=0)))
    monkeypatch.setattr(limits, "GLOBAL_OPEN_JOBS", 250)
    other = visitor_from("198.51.100.4").post(reverse("sandbox:start"), lab_form(jobs=60))
    assert other.status_code == 429
    assert re.search(r"The shared lab has (19\d|200) jobs still to run", other.content.decode())
    for experiment in Experiment.objects.active():
        experiments.experiment_stop(experiment)


@pytest.mark.django_db
def test_the_worker_seconds_cap_counts_duplicate_deliveries(client):
    # 300 jobs x 2 attempts x 1 s = 600 worker-seconds; with 60% delivered twice it is 960.
    response = client.post(
        reverse("sandbox:start"),
        lab_form(jobs=300, queue_cap=300, duration_ms=1000, duration_spread_ms=0, max_retries=1, duplicate_rate=0.6),
    )
    assert response.status_code == 400
    assert "could use 960 worker-seconds" in response.content.decode()
    assert f"the limit per experiment is {MAX_WORKER_SECONDS}" in response.content.decode()


def test_redrives_count_against_the_experiments_worker_time_budget(lab_engine):
    experiment = start("poison", jobs=3, max_retries=0, duration_ms=10, duration_spread_ms=0)
    lab_engine.finish(experiment)
    live.Recorder(experiment.pk).charge_budget(MAX_WORKER_SECONDS - 0.02)  # as if redriven many times
    with pytest.raises(experiments.LimitExceeded, match=r"this experiment has used 900 of its 900"):
        experiments.experiment_redrive(experiment)
    assert live.read(experiment.pk).counters["redriven"] == 0


# ---------------------------------------------------------------- 3. limits a fresh cookie cannot reset


def test_fresh_sessions_from_one_address_meet_the_address_ceiling(lab_engine):
    """Each person behind an address has their own three running runs (issue #25); a script minting a cookie per
    request meets the address's ceiling, and the message invites signing up."""
    slow = lab_form(jobs=2, duration_ms=3000, duration_spread_ms=0)
    ceiling = limits.ACTIVE_PER_VISITOR * ADDRESS_CEILING_TIMES
    responses = [visitor_from("203.0.113.9").post(reverse("sandbox:start"), slow) for _ in range(ceiling + 1)]
    assert [r.status_code for r in responses] == [302] * ceiling + [429]
    assert "Sign up" in responses[-1].content.decode()
    assert visitor_from("203.0.113.10").post(reverse("sandbox:start"), slow).status_code == 302
    for experiment in Experiment.objects.active():
        experiments.experiment_stop(experiment)


# ---------------------------------------------------------------- 5. starts are all or nothing; a reaper


def test_a_start_that_fails_half_way_leaves_nothing_running(lab_engine):
    redis = get_redis()
    before = {*redis.scan_iter("rq:job:lab-*"), *redis.scan_iter("lab:exp:*:c")}
    used = int(redis.info("memory")["used_memory"])
    redis.config_set("maxmemory", used + 200_000)  # room for a few jobs, not 500
    try:
        response = visitor_from("203.0.113.20").post(
            reverse("sandbox:start"), lab_form(jobs=500, queue_cap=500, duration_ms=1)
        )
    finally:
        redis.config_set("maxmemory", 0)
    assert response.status_code == 503
    body = response.content.decode()
    assert "Redis is full" in body
    assert "nothing was left running" in body
    assert not Experiment.objects.exists()  # nothing counts against the visitor's three running slots
    assert {*redis.scan_iter("rq:job:lab-*"), *redis.scan_iter("lab:exp:*:c")} <= before  # no job, no record


def test_the_reaper_ends_a_run_that_can_make_no_progress(lab_engine):
    experiment = start("happy", jobs=2, duration_ms=10)
    lab_engine.finish(experiment)
    stuck = Experiment.objects.create(preset="happy", params=PRESETS["happy"].parameters(), seed=1, limit_key="ip:x")
    # A start writes its row a moment before its Redis record: a reaper passing then must leave it alone.
    assert experiments.reap() == []
    assert Experiment.objects.get(pk=stuck.pk).status == Experiment.Status.RUNNING
    # Older than that, running in the database but nothing in Redis will ever finish it (its keys are gone).
    Experiment.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - timedelta(seconds=60))
    assert experiments.reap() == [stuck.pk]  # the janitor calls this on every pass (sandbox/ops/janitor.py)
    assert Experiment.objects.get(pk=stuck.pk).status == Experiment.Status.STOPPED
    assert Experiment.objects.get(pk=experiment.pk).status == Experiment.Status.FINISHED


# ---------------------------------------------------------------- 7. bad input is a 400, never a 500


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["redrive", "discard", "crash", "stop_job"])
def test_a_unicode_digit_job_number_is_a_400(client, action):
    from tests.sandbox.helpers import anonymous_visitor

    owner = anonymous_visitor(client)
    experiment = Experiment.objects.create(
        **owner.owner(), preset="poison", params=PRESETS["poison"].parameters(), seed=1
    )
    response = client.post(reverse(f"sandbox:{action}", args=[experiment.pk]), {"job": "²"})
    assert response.status_code == 400
    assert b"A job is a number from 1 to 500" in response.content
    compare = client.get(reverse("sandbox:compare"), {"a": "²", "b": str(experiment.pk)})
    assert compare.status_code == 400


# ---------------------------------------------------------------- 9. the smaller ones


@pytest.mark.django_db(transaction=True)  # eight clicks from eight threads, each with its own connection
def test_eight_simultaneous_redrive_all_clicks_redrive_each_job_once(lab_engine):
    from tests.sandbox.helpers import anonymous_visitor

    owner_client = visitor_from("203.0.113.30")
    owner = anonymous_visitor(owner_client)
    experiment = experiments.experiment_start(
        owner=owner, limit_key="ip:203.0.113.30", preset="poison",
        params={**PRESETS["poison"].parameters(), "jobs": 6, "max_retries": 0, "duration_ms": 10, "duration_spread_ms": 0},
    )  # fmt: skip
    lab_engine.finish(experiment)
    browsers = [Client(REMOTE_ADDR="203.0.113.30") for _ in range(8)]
    for browser in browsers:
        browser.cookies = owner_client.cookies
    url = reverse("sandbox:redrive", args=[experiment.pk])
    statuses = together([lambda browser=browser: browser.post(url, **HX).status_code for browser in browsers])
    assert statuses == [200] * 8
    state = lab_engine.finish(experiment)
    assert state.counters["redriven"] == 6  # each job once, however many clicks landed together
    assert state.counters["attempts"] == 12


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    ["/", "/topics/", "/sandbox/", "/sandbox/experiments/", "/healthz", "/search/?q=dlq", "/drills/",
     "/drills/progress/", "/drills/mock/", "/accounts/login/", "/accounts/signup/"],
)  # fmt: skip
def test_head_answers_like_get(client, url):
    response = client.head(url)
    assert response.status_code in (200, 503), url
    assert response.status_code != 405


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "experiment", *args],
        capture_output=True, text=True, timeout=60, cwd=BASE_DIR,
        env={**os.environ, "REDIS_URL": get_redis().connection_pool.connection_kwargs and redis_url()},
    )  # fmt: skip


def redis_url() -> str:
    kwargs = get_redis().connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def test_the_cli_refuses_an_unknown_parameter_as_a_usage_error():
    result = run_cli("run", "happy", "--set", "nosuch=1")
    assert result.returncode == 2, result.stderr
    assert "no parameter 'nosuch'" in result.stderr


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_a_dead_workers_job_shows_as_lost_until_the_janitor_retries_it(rq_workers):
    experiment = start("happy", jobs=1, duration_ms=8000, duration_spread_ms=0, timeout_s=12, max_retries=2,
                       backoff="fixed", backoff_base_s=1, jitter="none")  # fmt: skip
    state = wait_state(experiment, lambda s: 1 in s.running, 20, "job 1 to run")
    running = state.running[1]
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + running["worker"], connection=get_redis())
    os.kill(worker.pid, signal.SIGKILL)
    os.kill(running["pid"], signal.SIGKILL)

    def shown_lost() -> bool:
        view = readmodel.live_view(experiment, run_outcome.read_state(experiment, events=5), with_links=False)
        return any(row["lost"] for row in view["running_jobs"]) and view["timeline"][0]["status"] == "worker lost"

    wait_for(shown_lost, 12, message="the live view to say the worker was lost")
    wait_finished(experiment, 40)


# ---------------------------------------------------------------- 10. graceful deploys


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_sigterm_to_a_worker_mid_job_lets_the_job_finish_and_charge_once(rq_workers):
    experiment = start("happy", jobs=1, duration_ms=4000, duration_spread_ms=0, max_retries=0)
    state = wait_state(experiment, lambda s: 1 in s.running, 20, "job 1 to run")
    worker = Worker.find_by_key(
        Worker.redis_worker_namespace_prefix + state.running[1]["worker"], connection=get_redis()
    )
    os.kill(worker.pid, signal.SIGTERM)  # a deploy: warm shutdown
    state = wait_finished(experiment, 20)
    assert state.counters["succeeded"] == 1
    assert state.counters["attempts"] == 1  # not cut short and run again
    assert LedgerEntry.objects.filter(experiment=experiment).count() == 1
    wait_for(lambda: not pid_alive(worker.pid), 15, message="the stopped worker to exit")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by the pool) counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"
