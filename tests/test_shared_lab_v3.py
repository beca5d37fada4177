"""Shared Lab v3 (issue #25): the stream/log consumers protected like the RQ workers, limits fair to people
who share an address, no lock-out of the Lab or an account, health that tells the truth, no production
start on the development key. One test (or a few) per numbered finding, against the real stack."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from redis import Redis
from rq import Worker

from prepsite.redis_conn import get_redis
from prepsite.visitor import CLI
from sandbox.engine import experiments, limits, live
from sandbox.engine.presets import PRESETS
from sandbox.models import Experiment
from tests.conftest import BASE_DIR, CONSUMERS, STATE, free_port, wait_for, worker_env
from tests.sandbox.helpers import lab_form, started_id, together, visitor_from, wait_finished

# ---------------------------------------------------------------- 9. the development secret key


def production_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return {**env, "DJANGO_SETTINGS_MODULE": "prepsite.settings", "DJANGO_DEBUG": "0", **extra}


def test_check_deploy_fails_on_the_development_secret_key():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=BASE_DIR, env=production_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "prepsite.E001" in result.stderr
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_check_deploy_is_clean_with_a_real_key_in_production():
    env = production_env(
        DJANGO_SECRET_KEY="x7-" + "a1B2c3D4e5F6g7H8i9J0k" * 3,
        DJANGO_HTTPS="1",
        DJANGO_ALLOWED_HOSTS="prep.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://prep.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_web_process_refuses_to_start_on_the_development_key():
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    result = subprocess.run(
        [gunicorn, "prepsite.wsgi", "--bind", f"127.0.0.1:{free_port()}", "--workers", "1"],
        cwd=BASE_DIR, env=production_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


# ---------------------------------------------------------------- 10. the smaller ones


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/no-such-page/", "/sandbox/no-such-page", "/sandbox/experiments/999999/"])
def test_a_multipart_post_without_a_boundary_is_a_400_anywhere(url):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/")  # a CSRF cookie, as a browser would have: the 404 page's CSRF check read the body
    response = browser.generic("POST", url, b"--x\r\n", content_type="multipart/form-data")
    assert response.status_code == 400


@pytest.mark.parametrize("value", ["nan", "-5", "inf", "0"])
def test_the_cli_refuses_a_timeout_that_is_not_a_positive_number(value):
    result = subprocess.run(
        [sys.executable, "manage.py", "experiment", "run", "happy", "--timeout", value],
        cwd=BASE_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--timeout: must be more than 0" in result.stderr


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its new parent to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.startswith("State:") and "Z" in line for line in status)
    except FileNotFoundError:
        return True


def private_db_url(number: int) -> str:
    return re.sub(r"(/\d+)?$", f"/{number}", STATE["redis_url"], count=1)


@pytest.mark.process
@pytest.mark.django_db(transaction=True)
def test_sigkill_of_the_consumer_pool_takes_its_consumers_with_it():
    from django.db import connection

    url = private_db_url(4)  # its own database: the suite's pool never sees these consumers
    redis = Redis.from_url(url)
    redis.flushdb()
    env = {**worker_env(connection.settings_dict), "REDIS_URL": url}
    pool = subprocess.Popen(
        [sys.executable, "manage.py", "lab_consumers", "--num", "2"], cwd=BASE_DIR, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        pids = wait_for(lambda: consumer_pids(redis, 2), 30, message="two consumers to join")
        os.kill(pool.pid, signal.SIGKILL)
        pool.wait()
        wait_for(lambda: all(gone(pid) for pid in pids), 20, message="the orphaned consumers to die with the pool")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pool.pid, signal.SIGKILL)
        redis.flushdb()


def consumer_pids(redis: Redis, n: int) -> list[int] | None:
    from sandbox import delivery

    pids = [int(c["pid"]) for c in delivery.consumers(redis) if c.get("pid")]
    return pids if len(pids) >= n else None


@pytest.mark.process
@pytest.mark.django_db(transaction=True)
def test_sigkill_of_the_rq_worker_pool_takes_its_workers_with_it():
    from django.db import connection

    url = private_db_url(5)
    redis = Redis.from_url(url)
    redis.flushdb()
    env = {**worker_env(connection.settings_dict), "REDIS_URL": url}
    command = [sys.executable, "manage.py", "rqworker-pool", "lab", "--num-workers", "2"]
    command += ["--worker-class", "sandbox.ops.workers.LabWorker"]
    pool = subprocess.Popen(
        command, cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        workers = wait_for(lambda: len(Worker.all(connection=redis)) >= 2 and Worker.all(connection=redis), 60,
                           message="two RQ workers to register")  # fmt: skip
        pids = [worker.pid for worker in workers]
        assert pool.pid not in pids
        os.kill(pool.pid, signal.SIGKILL)
        pool.wait()
        wait_for(lambda: all(gone(pid) for pid in pids), 20, message="the orphaned workers to die with the pool")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pool.pid, signal.SIGKILL)
        redis.flushdb()


@pytest.mark.process
def test_sigkill_of_the_supervisor_takes_its_process_with_it():
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "prepsite.supervise", "sleeper", "--", "sleep", "300"], cwd=BASE_DIR,
        start_new_session=True,
    )  # fmt: skip
    try:
        child = wait_for(lambda: children_of(supervisor.pid), 20, message="the supervised process to start")[0]
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait()
        wait_for(lambda: gone(child), 20, message="the supervised process to die with its supervisor")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(supervisor.pid, signal.SIGKILL)


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            return [int(part) for part in file.read().split()]
    except FileNotFoundError:
        return []


# ---------------------------------------------------------------- 1, 2 and 10: one guarded way to kill a consumer


def live_consumers() -> list[str]:
    from sandbox import delivery

    return delivery.members(get_redis())


def watch_consumers(seconds: float) -> list[int]:
    """How many consumers were alive at each tenth of a second for `seconds`."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(len(live_consumers()))
        time.sleep(0.1)
    return seen


def a_long_stream_run() -> Experiment:
    """A stream run that stays running (a message every 2 s) and kills nobody by itself."""
    params = {**PRESETS["visibility-timeout"].parameters(), "jobs": 40, "queue_cap": 40, "arrival_per_s": 0.5,
              "duration_ms": 100, "duration_spread_ms": 0, "max_retries": 0, "crash_rate": 0.0}  # fmt: skip
    return experiments.experiment_start(owner=CLI, preset="visibility-timeout", params=params)


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_six_simultaneous_kills_leave_a_consumer_alive(rq_workers):
    wait_for(lambda: len(live_consumers()) >= 3, 30, message="three live consumers")
    run = a_long_stream_run()
    names = live_consumers()

    def kill(n: int) -> str:
        try:
            experiments.experiment_kill_consumer(run, names[n % len(names)], limit_key=f"anon:killer-{n}")
            return "killed"
        except (experiments.KillRefused, experiments.LimitExceeded) as exc:
            return str(exc)

    outcomes = together([lambda n=n: kill(n) for n in range(6)])
    assert outcomes.count("killed") == len(names) - 1, outcomes  # never the last one, however they race
    assert min(watch_consumers(6)) >= 1
    experiments.experiment_stop(run)
    wait_for(lambda: len(live_consumers()) >= 3, 30, message="the killed consumers to be restarted")


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_kills_of_a_consumer_that_does_not_exist_spend_nothing_of_the_lab_wide_budget(rq_workers, one_window):
    wait_for(lambda: len(live_consumers()) >= 3, 30, message="three live consumers")
    run = a_long_stream_run()
    for n in range(limits.GLOBAL_KILLS_PER_MINUTE):
        with pytest.raises(experiments.KillRefused, match="No live consumer is called c9-999999"):
            experiments.experiment_kill_consumer(run, "c9-999999", limit_key=f"anon:prober-{n // 5}")
    # The prober's own budget is spent (each try counts for the one who tries) ...
    with pytest.raises(experiments.KillRefused):  # its sixth try
        experiments.experiment_kill_consumer(run, "c9-999999", limit_key="anon:prober-0")
    with pytest.raises(experiments.LimitExceeded, match=f"At most {limits.KILLS_PER_MINUTE} consumer kills"):
        experiments.experiment_kill_consumer(run, "c9-999999", limit_key="anon:prober-0")
    # ... and another visitor's kill of a real consumer still goes through.
    assert "will be killed" in experiments.experiment_kill_consumer(run, live_consumers()[0], limit_key="anon:x")
    experiments.experiment_stop(run)
    wait_for(lambda: len(live_consumers()) >= 3, 30, message="the killed consumer to be restarted")


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_a_stream_run_that_always_crashes_cannot_keep_the_consumers_dead(rq_workers):
    wait_for(lambda: len(live_consumers()) >= 3, 30, message="three live consumers")
    crasher = visitor_from("198.51.100.60")
    response = crasher.post(
        reverse("sandbox:start"),
        lab_form("visibility-timeout", jobs=8, queue_cap=8, crash_rate=1, failure_rate=0, duration_ms=200,
                 duration_spread_ms=0, max_retries=1, visibility_timeout_s=1, lease_extension="off"),
    )  # fmt: skip
    crashing = Experiment.objects.get(pk=started_id(response))
    alive = watch_consumers(8)
    # Another visitor's stream run starts (it was a 503: no consumer alive) and finishes beside it.
    other = visitor_from("198.51.100.61").post(
        reverse("sandbox:start"), lab_form("visibility-timeout", jobs=5, crash_rate=0, duration_ms=50)
    )
    small = Experiment.objects.get(pk=started_id(other))
    alive += watch_consumers(4)
    assert min(alive) >= 1, alive
    assert wait_finished(small, 120).counters["succeeded"] == 5
    state = wait_finished(crashing, 240)
    c = state.counters
    assert c["crashes"] == 16  # every delivery crashed and was counted: 8 messages x 2 deliveries
    assert c["dead_lettered"] == 8
    events = [e["kind"] for e in live.read(crashing.pk, events=500).events]
    assert 1 <= events.count("crash_injected") <= limits.KILLS_PER_MINUTE * 3  # a few real kills, within budget
    assert events.count("crash_contained") >= 1  # the rest were contained: the consumer lived on


# ---------------------------------------------------------------- 4. caps checked and taken atomically


def start_together(clients: list[Client], data: dict, url: str = "sandbox:start") -> list[int]:
    """Every client posts the start form at the same moment (threads behind a barrier); their statuses."""
    return together([lambda browser=browser: browser.post(reverse(url), data).status_code for browser in clients])


def stop_all() -> None:
    for experiment in Experiment.objects.active():
        experiments.experiment_stop(experiment)


@pytest.mark.django_db(transaction=True)  # each thread's request commits on its own connection
def test_simultaneous_starts_cannot_pass_the_lab_wide_open_jobs_cap(lab_engine, monkeypatch):
    monkeypatch.setattr(limits, "GLOBAL_OPEN_JOBS", 500)
    big = lab_form("happy", jobs=100, queue_cap=100, duration_ms=2000, duration_spread_ms=0, max_retries=0)
    statuses = start_together([visitor_from(f"198.51.100.{70 + n}") for n in range(10)], big)
    assert sorted(statuses) == [302] * 5 + [429] * 5
    running = list(Experiment.objects.active().values_list("pk", flat=True))
    assert live.open_jobs(running) <= 500
    stop_all()


@pytest.mark.django_db(transaction=True)
def test_simultaneous_starts_by_one_visitor_cannot_pass_their_three_running(lab_engine):
    first = visitor_from("198.51.100.80")
    first.get(reverse("sandbox:home"))
    slow = lab_form("happy", jobs=2, duration_ms=3000, duration_spread_ms=0)
    first.post(reverse("sandbox:start"), slow)  # the visitor's cookie, then ten tabs at once
    tabs = []
    for _ in range(10):
        tab = visitor_from("198.51.100.80")
        tab.cookies = first.cookies
        tabs.append(tab)
    statuses = start_together(tabs, slow)
    assert statuses.count(302) == limits.ACTIVE_PER_VISITOR - 1
    assert Experiment.objects.active().count() == limits.ACTIVE_PER_VISITOR
    stop_all()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "extra"), [("sandbox:start_pair", {}), ("sandbox:start_models", {"vs_model": "stream"})]
)
def test_run_it_twice_at_the_limit_starts_neither_run(lab_engine, url, extra):
    me = visitor_from("198.51.100.90")
    slow = lab_form("retry-storm", jobs=2, duration_ms=3000, duration_spread_ms=0)
    for _ in range(limits.ACTIVE_PER_VISITOR - 1):
        started_id(me.post(reverse("sandbox:start"), slow))
    response = me.post(reverse(url), {**slow, **extra})
    assert response.status_code == 429
    assert "You already have 2 experiments running" in response.content.decode()
    assert Experiment.objects.count() == limits.ACTIVE_PER_VISITOR - 1  # no unpaired run
    stop_all()


# ---------------------------------------------------------------- 7. fair to people who share an address


def test_two_people_behind_one_address_each_run_three_experiments(lab_engine):
    slow = lab_form("happy", jobs=2, duration_ms=3000, duration_spread_ms=0)
    alice, bob = visitor_from("203.0.113.50"), visitor_from("203.0.113.50")
    for person in (alice, bob):
        for _ in range(limits.ACTIVE_PER_VISITOR):
            started_id(person.post(reverse("sandbox:start"), slow))
    refused = alice.post(reverse("sandbox:start"), slow)
    assert refused.status_code == 429
    assert "You already have 3 experiments running" in refused.content.decode()
    stop_all()


# ---------------------------------------------------------------- 8. nobody locks out an account; no free probing

PASSWORD = "correct horse battery staple"


@pytest.mark.django_db
def test_failed_log_ins_from_five_addresses_do_not_lock_the_owner_out(django_user_model):
    django_user_model.objects.create_user("victim", password=PASSWORD)
    for n in range(5):
        stranger = visitor_from(f"198.51.100.{100 + n}")
        stranger.post(reverse("login"), {"username": "victim", "password": f"guess {n}"})
    owner = visitor_from("192.0.2.123")
    response = owner.post(reverse("login"), {"username": "victim", "password": PASSWORD})
    assert response.status_code == 302
    assert owner.session["_auth_user_id"] == str(django_user_model.objects.get(username="victim").pk)


@pytest.mark.django_db
def test_sign_up_cannot_probe_usernames_past_a_throttle(django_user_model, one_window):
    from prepsite.accounts import SIGNUP_ATTEMPTS_PER_HOUR

    django_user_model.objects.create_user("taken", password=PASSWORD)
    data = {"username": "taken", "password1": PASSWORD, "password2": PASSWORD}
    answers = [visitor_from("198.51.100.120").post(reverse("signup"), data) for _ in range(30)]
    told = [r for r in answers if "A user with that username already exists" in r.content.decode()]
    assert len(told) == SIGNUP_ATTEMPTS_PER_HOUR < 30
    assert {r.status_code for r in answers[SIGNUP_ATTEMPTS_PER_HOUR:]} == {429}


# ---------------------------------------------------------------- 6. health that tells the truth


def healthz(client: Client) -> dict:
    return client.get(reverse("healthz")).json()


def wait_healthy(client: Client, timeout: float, message: str, workers: int = 0, consumers: int = 0) -> dict:
    """Wait for /healthz to say ok (with at least these many workers and consumers); a timeout shows its last body."""
    seen: list[dict] = []

    def healthy():
        body = healthz(client)
        seen[:] = [body]
        return body["status"] == "ok" and body["workers"] >= workers and body["consumers"] >= consumers and body

    try:
        return wait_for(healthy, timeout, message=message)
    except pytest.fail.Exception as exc:
        pytest.fail(f"{exc}; /healthz said last: {seen}")


def leave_a_healthy_lab() -> None:
    """A test that starved the pool (Redis refusing writes, consumers stopped) leaves the next test every RQ
    worker and consumer heart-beating, a live scheduler and a fresh janitor pass, as /healthz sees them."""
    browser = Client()
    wait_healthy(browser, 60, "a healthy lab for the next test", workers=2, consumers=3)


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_healthz_is_degraded_while_no_consumer_is_alive(rq_workers, client):
    from sandbox import delivery

    wait_healthy(client, 30, "a healthy lab", consumers=CONSUMERS)  # none of them is being restarted
    consumers = [int(c["pid"]) for c in delivery.consumers(get_redis())]
    # Their supervisor first: it restarts a consumer another test killed, and that one would beat on.
    supervisors = sorted({int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) for pid in consumers})
    pids = supervisors + consumers
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # alive as processes, but serving nothing: they stop heart-beating
    try:
        body = wait_for(lambda: (b := healthz(client))["status"] == "degraded" and b, 20, message="degraded")
        assert body["consumers"] == 0
        assert "no stream/log consumer alive: stream and log runs cannot start" in body["problems"]
    finally:
        for pid in reversed(pids):
            os.kill(pid, signal.SIGCONT)
    wait_healthy(client, 30, "healthy again once they serve")
    leave_a_healthy_lab()


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_healthz_reports_redis_memory_pressure(rq_workers, client):
    redis = get_redis()
    wait_healthy(client, 30, "a healthy lab")
    used = int(redis.info("memory")["used_memory"])
    redis.config_set("maxmemory", int(used / 0.95))
    try:
        body = wait_for(lambda: (b := healthz(client))["status"] == "degraded" and b, 20, message="degraded")
        assert body["redis_memory"]["used_ratio"] >= 0.9
        assert any("Redis memory at" in problem for problem in body["problems"])
    finally:
        redis.config_set("maxmemory", 0)
    assert healthz(client)["redis_memory"]["max_mb"] is None
    leave_a_healthy_lab()


# ---------------------------------------------------------------- 5. Redis restarts: every run ends, its slot freed


def stream_run(**overrides) -> Experiment:
    params = {**PRESETS["happy"].parameters(), "model": "stream", "duration_ms": 50, "duration_spread_ms": 0,
              **overrides}  # fmt: skip
    return experiments.experiment_start(owner=CLI, preset="happy", params=params)


def ended(experiment: Experiment) -> bool:
    return Experiment.objects.get(pk=experiment.pk).status != Experiment.Status.RUNNING


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_a_stream_run_whose_outcome_redis_lost_is_ended_with_a_reason(rq_workers):
    run = stream_run(jobs=3)
    wait_finished(run, 60)
    wait_for(lambda: ended(run), 30, message="the run to be marked finished")
    # Redis restarted within its one-second fsync window: order 3's acknowledgement survived, its outcome did not.
    redis = get_redis()
    redis.hdel(live.key(run.pk, "term"), "3")
    redis.hincrby(live.key(run.pk, "c"), "succeeded", -1)
    Experiment.objects.filter(pk=run.pk).update(status=Experiment.Status.RUNNING, finished_at=None)
    assert not live.read(run.pk).finished  # nothing will ever deliver order 3 again
    wait_for(lambda: ended(run), 90, message="the janitor to end the run that can make no progress")
    state = live.read(run.pk, events=50)
    assert state.counters["succeeded"] == 2
    assert state.counters["stopped"] == 1  # accounted: requested = succeeded + dead-lettered + stopped
    assert any(e["kind"] == "run_ended" and "Redis lost the outcome" in e.get("detail", "") for e in state.events)


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_stream_and_log_runs_across_a_redis_restart_all_end_and_free_their_slots(rq_workers, redis_control):
    runs = [stream_run(jobs=20, arrival_per_s=4), stream_run(jobs=20, arrival_per_s=4, model="log")]
    wait_for(lambda: all(live.read(r.pk).counters["succeeded"] >= 3 for r in runs), 60, message="runs under way")
    redis_control.stop()
    redis_control.start()
    for run in runs:
        wait_for(lambda run=run: ended(run), 180, message=f"run {run.pk} to end after the restart")
    assert not Experiment.objects.active().filter(pk__in=[r.pk for r in runs]).exists()


# ---------------------------------------------------------------- 6. Redis full: nothing lost


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_a_stream_arrival_due_while_redis_is_full_is_delivered_once_redis_has_room(rq_workers):
    from sandbox import delivery

    redis = get_redis()
    run = stream_run(jobs=6, arrival_per_s=1, max_retries=3)
    wait_for(lambda: live.read(run.pk).counters["succeeded"] >= 1, 60, message="a first message")
    redis.config_set("maxmemory", 1)  # every write that could grow memory is refused, whatever else frees some
    try:
        # Arrivals come due while Redis refuses writes: the mover must not take them off the schedule.
        wait_for(lambda: redis.zrangebyscore(delivery.DELAYED, "-inf", time.time()), 20, message="an arrival due")
        time.sleep(2)  # the mover tries (and fails) every 50 ms
        assert redis.zrangebyscore(delivery.DELAYED, "-inf", time.time())  # still scheduled, not lost
    finally:
        redis.config_set("maxmemory", 0)
    state = wait_finished(run, 120)
    c = state.counters
    assert c["succeeded"] + c["dead_lettered"] == 6
    assert c["stopped"] == 0  # nothing lost, and nothing ended by the janitor for lack of progress
    leave_a_healthy_lab()
