"""What the Lab's processes cost while nobody runs anything: CPU-seconds per second of each, idle.

Boots `make run`'s pool against a private Redis and a temporary SQLite (two RQ workers, the janitor, the
renderer, three stream/log consumers and their supervisor), lets it settle, then reads each process group's CPU
from /proc over a window. The test suite boots one such pool per test process and keeps it for the session, and
a development machine keeps one all day, so an idle pool's polling is paid for every second it lives.

Prints one line per process group, then `idle_cpu_per_s=<sum> redis_cpu_per_s=… calibration_s=…` last.
Usage: python3 bench/idle_stack.py [seconds, default 30]
"""

import os
import sys
import time

from stack import Stack

TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid: int) -> float:
    """CPU-seconds of every live process in a process group, with the children each has reaped."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[0] is the state: pgrp is the 5th field of stat, 3rd after ")"
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def pid_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / TICKS


def calibration_s() -> float:
    started = time.process_time()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.process_time() - started


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    stack = Stack()
    try:
        stack.workers(2)
        stack.consumers(3)
        time.sleep(5)  # let every process finish booting
        names = [" ".join(process.args[2:4]) for process in stack.processes]
        groups = [process.pid for process in stack.processes]
        before = [group_cpu_s(pgid) for pgid in groups]
        redis_before = pid_cpu_s(stack.redis.pid)
        time.sleep(seconds)
        after = [group_cpu_s(pgid) for pgid in groups]
        redis_s = (pid_cpu_s(stack.redis.pid) - redis_before) / seconds
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
