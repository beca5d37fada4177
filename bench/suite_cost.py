"""What `make test` costs in CPU, against this machine's speed measured in the same run.

Wall time alone says little on a shared machine whose speed moves 2x between sessions: the suite's CPU-seconds
(every process it started and waited for: pytest, its worker pools and work-horses, Chromium, Redis) divided by
the time of a fixed CPU-bound loop is a cost that travels between machines. On N cores no scheduling can finish
faster than CPU-seconds / N, so that floor says whether a wall-time target is reachable here at all.

Prints the calibration, then `make test`'s result, then `cost=<CPU-s / calibration-s> cpu_s=… wall_s=…
floor_s=…` last. Usage: python3 bench/suite_cost.py [--per-test] [make arguments, e.g. PYTEST_ARGS=tests/topics]
--per-test also prints the 30 tests that cost the most CPU (bench/cpu_per_test.py), before the last line.
"""

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
LOOP = 10_000_000


def calibration_s(rounds: int = 5) -> float:
    """The best of a few runs of one fixed pure-Python loop: this machine's single-core speed, now."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        total = 0
        for i in range(LOOP):
            total += i
        best = min(best, time.process_time() - started)
    return best


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_s() -> float | None:
    """Busy CPU-seconds of the whole machine (Linux): an upper bound, since it counts whatever else ran, and it
    also counts what the suite did not wait for (orphaned grandchildren reaped by init)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(field) for field in stat.readline().split()[1:]]
    except OSError:
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def main() -> int:
    cores = os.cpu_count() or 1
    args, env = sys.argv[1:], dict(os.environ)
    per_test = "--per-test" in args
    if per_test:
        args.remove("--per-test")
        log = Path(tempfile.mkdtemp()) / "cpu_per_test.jsonl"
        env["CPU_PER_TEST_LOG"] = str(log)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BASE_DIR), env.get("PYTHONPATH")]))
        env["PYTEST_ADDOPTS"] = f"{env.get('PYTEST_ADDOPTS', '')} -p bench.cpu_per_test".strip()
    before = calibration_s()
    print(f"calibration: {LOOP:,} additions in {before:.3f} s (best of 5)", flush=True)
    cpu0, busy0, wall0 = children_cpu_s(), machine_busy_s(), time.monotonic()
    result = subprocess.run(["make", "test", *args], cwd=BASE_DIR, env=env, check=False)
    cpu, busy1, wall = children_cpu_s() - cpu0, machine_busy_s(), time.monotonic() - wall0
    if busy0 is not None and busy1 is not None:
        print(f"the whole machine was busy {busy1 - busy0:.0f} CPU-s meanwhile (the suite's own: {cpu:.0f})")
    after = calibration_s()
    calibration = min(before, after)
    if per_test and log.exists():
        from cpu_per_test import top

        print(top(log))
    print(f"calibration after the suite: {after:.3f} s; make test exited {result.returncode}")
    print(
        f"cost={cpu / calibration:.0f} cpu_s={cpu:.0f} wall_s={wall:.0f} floor_s={cpu / cores:.0f} "
        f"(on {cores} cores; a 300 s wall needs cost <= {300 * cores / calibration:.0f} at this speed)"
    )
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
