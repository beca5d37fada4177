"""A 20-message run alone, then beside a visitor running three long experiments, on make run's workers and
consumers; for each delivery model (rq, stream, log).

Usage: .venv/bin/python bench/fairness.py [rounds] [workers] [consumers] [models, default rq,stream,log]
— prints `rq_ratio=<a> stream_ratio=<b> log_ratio=<c>` last (beside-the-hog time ÷ solo time; target ≤ 3 each).

The RQ hog runs three experiments of 90 jobs x 10 s with concurrency 8 (within every limit) on the RQ workers;
the stream/log hog runs three log experiments of 90 messages x 10 s (issue #25's hog), which holds the consumers
the stream and log models share. The small run is the happy preset, 20 messages of ~200 ms, on the model
measured. Both are timed from the start request to the last message's end. Each round measures solo and
beside-hog back to back; the figure is the median.
"""

import re
import statistics
import sys
import time

from stack import BASE_DIR, Stack

MODELS = ("rq", "stream", "log")
HOG = {"jobs": 90, "queue_cap": 90, "duration_ms": 10_000, "duration_spread_ms": 0, "max_retries": 0, "concurrency": 8}


def procfile_count(pattern: str) -> int:
    """A process count `make run` starts, read from the Procfile so the two cannot drift."""
    return int(re.search(pattern, (BASE_DIR / "Procfile").read_text())[1])


def timed_run(visitor: str, seed: int, model: str) -> float:
    from prepsite.visitor import Visitor
    from sandbox.engine import experiments, live
    from sandbox.engine.presets import PRESETS

    began = time.monotonic()
    experiment = experiments.experiment_start(
        owner=Visitor(anon_id=visitor), limit_key=f"anon:{visitor}", preset="happy",
        params={**PRESETS["happy"].parameters(), "model": model}, seed=seed,
    )  # fmt: skip
    while not live.looks_finished(experiment.pk):
        time.sleep(0.05)
    return time.monotonic() - began


def hog_busy(model: str, workers: int, consumers: int) -> bool:
    """The hog holds every worker (or consumer) it may: with headroom, one stays free for the next visitor."""
    from rq import Worker

    from prepsite.redis_conn import get_redis
    from sandbox import delivery

    if model == "rq":
        busy = [w for w in Worker.all(connection=get_redis()) if w.get_state() == "busy"]
        return len(busy) >= workers - (1 if workers >= 3 else 0)
    working = [c for c in delivery.consumers(get_redis()) if c.get("doing")]
    return len(working) >= consumers - (1 if consumers >= 3 else 0)


def start_hog(n: int, model: str) -> None:
    from prepsite.visitor import Visitor
    from sandbox.engine import experiments
    from sandbox.engine.presets import PRESETS

    hog = Visitor(anon_id=f"hog-{model}-{n}")
    for k in range(3):
        experiments.experiment_start(
            owner=hog, limit_key=hog.key, preset="happy",
            params={**PRESETS["happy"].parameters(), **HOG, "model": "rq" if model == "rq" else "log"}, seed=k,
        )  # fmt: skip


def stop_everything() -> None:
    from sandbox.engine import experiments
    from sandbox.models import Experiment

    for experiment in Experiment.objects.active():
        experiments.experiment_stop(experiment)
    while Experiment.objects.active().exists():
        time.sleep(0.2)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else procfile_count(r"--num-workers (\d+)")
    consumers = int(sys.argv[3]) if len(sys.argv) > 3 else procfile_count(r"lab_consumers --num (\d+)")
    models = sys.argv[4].split(",") if len(sys.argv) > 4 else MODELS
    stack = Stack()
    ratios = {}
    try:
        stack.workers(workers)
        stack.consumers(consumers)
        for model in models:
            solo, beside = [], []
            for n in range(rounds):
                solo.append(timed_run(f"solo-{model}-{n}", n, model))
                start_hog(n, model)
                deadline = time.monotonic() + 60
                while not hog_busy(model, workers, consumers) and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(1)  # the hog's messages are well under way
                beside.append(timed_run(f"newcomer-{model}-{n}", n, model))
                stop_everything()
                print(f"{model} round {n + 1}: solo {solo[-1]:.2f} s, beside the hog {beside[-1]:.2f} s",
                      file=sys.stderr)  # fmt: skip
            a, b = statistics.median(solo), statistics.median(beside)
            ratios[model] = b / a
            print(f"{model}: solo_s={a:.2f} beside_hog_s={b:.2f} ratio={b / a:.2f}", file=sys.stderr)
    finally:
        stack.close()
    print(f"workers={workers} consumers={consumers} rounds={rounds}", file=sys.stderr)
    print(" ".join(f"{model}_ratio={ratio:.2f}" for model, ratio in ratios.items()))


if __name__ == "__main__":
    main()
