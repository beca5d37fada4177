"""A pytest plugin: the CPU-seconds each test costs, its own process and everything that process started.

On a suite that keeps 2 cores busy, wall time under `-n 6` says more about what ran beside a test than about the
test. This counts, per test (setup, call and teardown), the CPU of the test process and of all its descendants
(its worker pool and their work-horses, Chromium and its renderers, its Redis), including children they reaped.

Used by `bench/suite_cost.py --per-test`; on its own: PYTHONPATH=. pytest -p bench.cpu_per_test, with
CPU_PER_TEST_LOG=<file> to append one JSON line per test.
"""

import json
import os
from pathlib import Path

import pytest

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, CPU-s of the process and of the children it reaped)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return int(fields[1]), sum(int(field) for field in fields[11:15]) / TICK  # utime stime cutime cstime


def tree_cpu_s(root: int) -> float:
    """CPU-s of root and every process below it (Linux /proc; 0 elsewhere)."""
    stats = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (stat := _stat(entry.name)):
            stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo.extend(children.get(pid, ()))
    return total


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not Path("/proc/self/stat").exists():
        yield
        return
    before = tree_cpu_s(os.getpid())
    yield
    # A process that leaves the tree unreaped by it (a killed pool's orphans) takes its CPU along: never below 0.
    spent = max(0.0, tree_cpu_s(os.getpid()) - before)
    log = os.environ.get("CPU_PER_TEST_LOG")
    if log:
        with open(log, "a") as out:
            out.write(json.dumps({"test": item.nodeid, "cpu_s": round(spent, 2)}) + "\n")


def top(log: Path, count: int = 30) -> str:
    """The `count` costliest tests and the share of the whole they take, as a Markdown table."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rows.sort(key=lambda row: row["cpu_s"], reverse=True)
    total = sum(row["cpu_s"] for row in rows) or 1.0
    lines = ["| CPU-s | test |", "| ---: | --- |"]
    lines += [f"| {row['cpu_s']:.1f} | `{row['test']}` |" for row in rows[:count]]
    head = sum(row["cpu_s"] for row in rows[:count])
    lines.append(
        f"\n{len(rows)} tests, {total:.0f} CPU-s counted; the top {count} take {head:.0f} ({head / total:.0%})"
    )
    return "\n".join(lines)
