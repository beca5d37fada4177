"""Seconds from a whole worker's SIGKILL (parent and work-horse) to its job running again.

Usage: .venv/bin/python bench/recovery.py [trials]   — prints `recovery_s=<median>` last.
RQ alone recovers such a job only after its heartbeat entry expires (60 s + the monitoring
interval) and some process cleans the registry; our janitor watches worker heartbeats instead.
"""

import os
import signal
import statistics
import sys
import time

from stack import Stack


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    stack = Stack()
    try:
        stack.workers(2)
        from rq import Worker

        from prepsite.redis_conn import get_redis
        from prepsite.visitor import CLI
        from sandbox.engine import experiments, live
        from sandbox.engine.presets import PRESETS

        results = []
        for trial in range(trials):
            params = {**PRESETS["happy"].parameters(), "jobs": 1, "duration_ms": 8000, "duration_spread_ms": 0,
                      "timeout_s": 20, "max_retries": 2, "backoff": "fixed", "backoff_base_s": 0, "jitter": "none"}  # fmt: skip
            experiment = experiments.experiment_start(owner=CLI, preset="happy", params=params, seed=trial)
            while 1 not in (state := live.read(experiment.pk)).running:
                time.sleep(0.05)
            running = state.running[1]
            worker = Worker.find_by_key(
                Worker.redis_worker_namespace_prefix + running["worker"], connection=get_redis()
            )
            killed = time.monotonic()
            os.kill(worker.pid, signal.SIGKILL)
            os.kill(running["pid"], signal.SIGKILL)
            while live.read(experiment.pk).counters["attempts"] < 2:
                time.sleep(0.05)
            seconds = time.monotonic() - killed
            results.append(seconds)
            print(f"trial {trial + 1}: job running again {seconds:.1f} s after the SIGKILL", file=sys.stderr)
            while not live.read(experiment.pk).finished:
                time.sleep(0.2)
            time.sleep(3)  # let the pool replace the dead worker
    finally:
        stack.close()
    print(f"max_s={max(results):.1f}")
    print(f"recovery_s={statistics.median(results):.1f}")


if __name__ == "__main__":
    main()
