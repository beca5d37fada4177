"""`python -m prepsite.supervise NAME -- COMMAND...`: keep one process of the stack running.

honcho (make run) stops the whole stack when any process exits, so every Procfile line runs under
this: a process that dies (kill -9, a crash) is started again after a short, growing pause, and
only that process; SIGTERM or SIGINT is passed on, and then the supervisor exits with it.

A process that forks a pool (the RQ worker pool, the stream/log consumers) makes each child call
`die_with_parent()`: if the parent is SIGKILLed (which it cannot catch), the kernel kills its children
too, so the restarted pool never runs beside the old pool's orphans. The supervisor does the same for
the process it runs.
"""

import ctypes
import functools
import os
import signal
import subprocess
import sys
import time

FIRST_PAUSE_S = 0.5
LONGEST_PAUSE_S = 10.0
HEALTHY_AFTER_S = 30.0  # a run this long resets the pause: it was a crash, not a crash loop


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int | None = None) -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux's PR_SET_PDEATHSIG); True if set.

    parent_pid: the parent this process was forked by; if it is already gone (it died between the fork
    and this call), exit now rather than run as an orphan."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):  # not Linux: supervision falls back to process groups
        return False
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
    return True


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("usage: python -m prepsite.supervise NAME -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    name, command = " ".join(argv[: argv.index("--")]) or "process", argv[argv.index("--") + 1 :]
    stopping: list[int] = []
    child: subprocess.Popen | None = None

    def forward(signum, frame) -> None:
        stopping.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    pause = FIRST_PAUSE_S
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command, preexec_fn=functools.partial(die_with_parent, os.getpid()))
        code = child.wait()
        if stopping:
            return code
        ran = time.monotonic() - started
        pause = FIRST_PAUSE_S if ran > HEALTHY_AFTER_S else min(pause * 2, LONGEST_PAUSE_S)
        print(f"supervise: {name} exited with {code} after {ran:.1f} s; starting it again in {pause:.1f} s", flush=True)
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline and not stopping:
            time.sleep(0.1)
        if stopping:
            return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
