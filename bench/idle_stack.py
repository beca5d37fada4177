"""What the Lab's processes cost while nobody runs anything: CPU-seconds per second of each, idle.

Boots `make run`'s pool against a private Redis and a temporary SQLite (two RQ workers, the janitor, the
renderer, three stream/log consumers and their supervisor), lets it settle, then reads each process's CPU,
with everything below it, from /proc over a window. The test suite boots one such pool per test process and
keeps it for the session, and a development machine keeps one all day: idle polling is paid every second.

Prints one line per process, then `idle_cpu_per_s=<sum> redis_cpu_per_s=… calibration_s=…` last.
Usage: python3 bench/idle_stack.py [seconds, default 30]
"""

import sys
import time

from cpu_per_test import tree_cpu_s
from stack import Stack
from suite_cost import calibration_s


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    stack = Stack()
    try:
        stack.workers(2)
        stack.consumers(3)
        time.sleep(5)  # let every process finish booting
        names = [" ".join(process.args[2:4]) for process in stack.processes]
        roots = [process.pid for process in stack.processes]
        before = [tree_cpu_s(pid) for pid in roots]
        redis_before = tree_cpu_s(stack.redis.pid)
        time.sleep(seconds)
        after = [tree_cpu_s(pid) for pid in roots]
        redis_s = (tree_cpu_s(stack.redis.pid) - redis_before) / seconds
    finally:
        stack.close()
    total = 0.0
    for name, start, end in zip(names, before, after, strict=True):
        rate = (end - start) / seconds
        total += rate
        print(f"{name:<28} {rate:.4f} CPU-s/s")
    print(f"{'redis-server':<28} {redis_s:.4f} CPU-s/s")
    print(f"idle_cpu_per_s={total + redis_s:.4f} redis_cpu_per_s={redis_s:.4f} calibration_s={calibration_s():.3f}")


if __name__ == "__main__":
    main()
