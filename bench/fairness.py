"""A 20-job run alone, then beside a visitor running three long experiments, on make run's worker pool.

Usage: .venv/bin/python bench/fairness.py [rounds] [workers]   — prints `solo_s=<a> beside_hog_s=<b> ratio=<b/a>` last.

The hog runs three experiments of 90 jobs x 10 s with concurrency 8 (within every limit); the small
run is the happy preset, 20 jobs of ~200 ms with concurrency 2. Both are timed from the start request
to the last job's end. Each round measures solo and beside-hog back to back; the figure is the median.
"""

import re
import statistics
import sys
import time

from stack import BASE_DIR, Stack

HOG = {"jobs": 90, "queue_cap": 90, "duration_ms": 10_000, "duration_spread_ms": 0, "max_retries": 0, "concurrency": 8}


def procfile_workers() -> int:
    """The worker count `make run` starts, read from the Procfile so the two cannot drift."""
    return int(re.search(r"--num-workers (\d+)", (BASE_DIR / "Procfile").read_text())[1])


def timed_run(visitor: str, seed: int) -> float:
    from prepsite.visitor import Visitor
    from sandbox.engine import experiments, live
    from sandbox.engine.presets import PRESETS

    began = time.monotonic()
    experiment = experiments.experiment_start(
        owner=Visitor(anon_id=visitor), limit_key=f"ip:{visitor}", preset="happy",
        params=PRESETS["happy"].parameters(), seed=seed,
    )  # fmt: skip
    while not live.looks_finished(experiment.pk):
        time.sleep(0.05)
    return time.monotonic() - began


def all_busy(workers: int) -> bool:
    from rq import Worker

    from prepsite.redis_conn import get_redis

    busy = [w for w in Worker.all(connection=get_redis()) if w.get_state() == "busy"]
    return len(busy) >= workers - (1 if workers >= 3 else 0)  # with headroom, one worker stays free


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else procfile_workers()
    stack = Stack()
    solo, beside = [], []
    try:
        stack.workers(workers)
        from prepsite.visitor import Visitor
        from sandbox.engine import experiments
        from sandbox.engine.presets import PRESETS
        from sandbox.models import Experiment

        for n in range(rounds):
            solo.append(timed_run(f"solo-{n}", n))
            hog = Visitor(anon_id=f"hog-{n}")
            for k in range(3):
                experiments.experiment_start(
                    owner=hog, limit_key=f"ip:hog-{n}", preset="happy",
                    params={**PRESETS["happy"].parameters(), **HOG}, seed=k,
                )  # fmt: skip
            while not all_busy(workers):
                time.sleep(0.05)
            time.sleep(1)  # the hog's jobs are well under way
            beside.append(timed_run(f"newcomer-{n}", n))
            for experiment in Experiment.objects.active():
                experiments.experiment_stop(experiment)
            while Experiment.objects.active().exists():
                time.sleep(0.2)
            print(f"round {n + 1}: solo {solo[-1]:.2f} s, beside the hog {beside[-1]:.2f} s", file=sys.stderr)
    finally:
        stack.close()
    a, b = statistics.median(solo), statistics.median(beside)
    print(f"workers={workers} rounds={rounds}", file=sys.stderr)
    print(f"solo_s={a:.2f} beside_hog_s={b:.2f} ratio={b / a:.2f}")


if __name__ == "__main__":
    main()
