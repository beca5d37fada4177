"""Jobs/s of Lab experiment jobs (event logging on, no faults) over bare no-op RQ jobs, same worker class;
and the same Lab run on the stream and log delivery models, each served by one consumer process
(one RQ worker vs one stream/log consumer: the consumer needs no fork per message).

Runs against a private Redis and a throwaway SQLite database, three alternating rounds of [jobs] each;
prints each round, then `ratio=<median lab/no-op> stream_vs_rq=<median> log_vs_rq=<median>` last.
Usage: .venv/bin/python bench/throughput.py [jobs]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


def drain(env: dict) -> None:
    """One forking LabWorker in burst mode: it exits when the queue is empty."""
    subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "rqworker", "lab", "--burst", "--worker-class", "sandbox.ops.workers.LabWorker"],
        env=env, cwd=BASE_DIR, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def rate(jobs) -> float:
    started = min(job.started_at for job in jobs)
    ended = max(job.ended_at for job in jobs)
    return len(jobs) / (ended - started).total_seconds()


ROUNDS = 3


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    from prepsite import devstack

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    port = 6500 + os.getpid() % 400
    redis_server = devstack.start_redis(port, workdir / "redis", appendonly=False)
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
    }
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prepsite.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from rq import Queue
    from rq.job import Job

    from prepsite.redis_conn import get_redis
    from prepsite.visitor import CLI
    from sandbox.engine import experiments, live
    from sandbox.engine.presets import PRESETS

    call_command("migrate", verbosity=0)
    queue = Queue("lab", connection=get_redis())

    def noop_rate() -> float:
        jobs = [queue.enqueue("operator.add", 1, 2, result_ttl=600) for _ in range(n)]
        drain(env)
        return rate([Job.fetch(job.id, connection=get_redis()) for job in jobs])

    def lab_rate() -> float:
        params = {**PRESETS["happy"].parameters(), "jobs": n, "duration_ms": 0, "duration_spread_ms": 0,
                  "queue_cap": n, "concurrency": 8}  # fmt: skip
        experiment = experiments.experiment_start(owner=CLI, preset="happy", params=params, seed=1)
        while not live.read(experiment.pk, events=0).finished:
            drain(env)  # the rate limit releases jobs in batches of `concurrency`; drain until all ran
        assert live.read(experiment.pk).counters["succeeded"] == n
        return rate([Job.fetch(live.job_id_for(experiment.pk, i), connection=get_redis()) for i in range(1, n + 1)])

    def model_rate(model: str) -> float:
        params = {**PRESETS["happy"].parameters(), "jobs": n, "duration_ms": 0, "duration_spread_ms": 0,
                  "queue_cap": n, "model": model, "partitions": 4}  # fmt: skip
        experiment = experiments.experiment_start(owner=CLI, preset="happy", params=params, seed=1)
        while not live.read(experiment.pk, events=0).finished:
            time.sleep(0.05)
        assert live.read(experiment.pk).counters["succeeded"] == n
        marks = [mark for job in live.job_marks(experiment.pk, list(range(1, n + 1))).values() for mark in job]
        return n / (max(mark["t"] for mark in marks) - min(mark["s"] for mark in marks))

    ratios, stream_ratios, log_ratios = [], [], []
    consumers = subprocess.Popen(
        [sys.executable, str(BASE_DIR / "manage.py"), "lab_consumers", "--num", "1"],
        env=env, cwd=BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # Rounds alternate the models, so a noisy spell on a shared machine hits them alike.
        for round_number in range(1, ROUNDS + 1):
            noop, lab, stream, log = noop_rate(), lab_rate(), model_rate("stream"), model_rate("log")
            ratios.append(lab / noop)
            stream_ratios.append(stream / lab)
            log_ratios.append(log / lab)
            print(
                f"round {round_number}: no-op {noop:.1f} jobs/s, lab on rq {lab:.1f}, stream {stream:.1f}, "
                f"log {log:.1f} jobs/s; lab/no-op {lab / noop:.2f}, stream/rq {stream / lab:.2f}, log/rq {log / lab:.2f}"
            )
    finally:
        consumers.terminate()
        consumers.wait()
        redis_server.terminate()
        redis_server.wait()
    print(
        f"ratio={statistics.median(ratios):.2f} stream_vs_rq={statistics.median(stream_ratios):.2f} "
        f"log_vs_rq={statistics.median(log_ratios):.2f}"
    )


if __name__ == "__main__":
    main()
