import contextlib
import json
import os
import signal
import time

from django.core.management.base import BaseCommand
from django.db import connections
from redis.exceptions import RedisError

from prepsite.redis_conn import get_redis, wait_for_wake
from prepsite.supervise import die_with_parent
from sandbox import delivery
from sandbox.engine import keys
from sandbox.ops.consumers import Consumer

TICK_S = 0.05
MOVER_WAIT_S = (0.01, 0.25)  # the mover sleeps until the next arrival, within these bounds, or until woken
RESTART_AFTER_S = {"killed": 5.0, "exited": 1.0}  # a killed consumer stays dead long enough to see a rebalance
SHUTDOWN_WAIT_S = 20


def died_for(info: bytes | None) -> set[int]:
    """The runs a dead consumer died for: those that asked for the kill, else the run of its message."""
    try:
        info = json.loads(info or "{}")
        return {int(run) for run in info.get("killed_for") or [info.get("run")] if run is not None}
    except (ValueError, TypeError, AttributeError):
        return set()


class Command(BaseCommand):
    help = "Run the stream/log consumers (forked, restarted when they die) and the delayed-arrival mover."

    def add_arguments(self, parser):
        parser.add_argument("--num", type=int, default=3, help="consumer processes (default 3)")

    def handle(self, *args, num: int, **options):
        if not 1 <= num <= 16:
            self.stderr.write("lab consumers: --num must be 1-16")
            raise SystemExit(2)
        self.redis = get_redis()
        self.children: dict[int, int] = {}  # pid -> slot
        self.due: dict[int, float] = {slot: 0.0 for slot in range(1, num + 1)}  # slot -> when to (re)start
        self.stopping = False
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.stdout.write(f"lab consumers: {num} stream/log consumers")
        while not self.stopping:
            self.reap()
            self.start_due()
            try:
                delivery.release_due(self.redis)
                self.wait_for_arrivals()
            except Exception as exc:  # Redis blip: the arrivals wait a tick
                self.stderr.write(f"lab consumers: moving arrivals failed ({exc!r}); retrying")
                time.sleep(TICK_S)
        self.shutdown()

    def wait_for_arrivals(self) -> None:
        """Sleep until the next arrival is due, a consumer is due a restart, or a new run wakes the mover
        (sandbox.delivery.wake); at most MOVER_WAIT_S[1], so a dead consumer is reaped that soon."""
        shortest, longest = MOVER_WAIT_S
        wait = longest
        next_arrival = delivery.until_next_arrival(self.redis)
        if next_arrival is not None:  # an overdue one could not move (Redis full): try again in a tick
            wait = min(wait, next_arrival or TICK_S)
        if self.due:
            wait = min(wait, min(self.due.values()) - time.monotonic())
        wait_for_wake(self.redis, keys.WAKE_MOVER, max(shortest, wait))

    def stop(self, *_):
        self.stopping = True

    def start_due(self) -> None:
        now = time.monotonic()
        for slot, at in list(self.due.items()):
            if at > now:
                continue
            del self.due[slot]
            connections.close_all()
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:
                die_with_parent(parent)  # a SIGKILLed pool takes its consumers with it (no doubled pool)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the pool, which stops us cleanly
                code = 0
                try:
                    Consumer(slot).serve()
                except Exception as exc:
                    self.stderr.write(f"lab consumer c{slot}: {exc!r}")
                    code = 1
                finally:
                    os._exit(code)
            self.children[pid] = slot

    def reap(self) -> None:
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            slot = self.children.pop(pid, None)
            if slot is None:
                continue
            name = delivery.consumer_name(slot, pid)
            # The group notices at once that the member is gone (as a broker notices a dropped connection);
            # with Redis down, its session simply runs out instead.
            how = "killed" if os.WIFSIGNALED(status) else "exited"
            released = ""
            with contextlib.suppress(RedisError):
                raw = self.redis.hget(delivery.MEMBER_INFO, name)
                self.redis.zrem(delivery.MEMBERS, name)
                self.redis.hdel(delivery.MEMBER_INFO, name)
                if how == "killed":  # only the runs it died for wait out their leases
                    n = delivery.release_leases(self.redis, name, keep=died_for(raw))
                    released = f"; {n} lease{'' if n == 1 else 's'} of other runs handed back"
            if not self.stopping:
                self.stdout.write(f"lab consumers: {name} {how}{released}; restarting in {RESTART_AFTER_S[how]:g} s")
                self.due[slot] = time.monotonic() + RESTART_AFTER_S[how]

    def shutdown(self) -> None:
        for pid in self.children:
            os.kill(pid, signal.SIGTERM)  # each finishes its current message, then leaves the group
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(TICK_S)
        for pid in self.children:
            os.kill(pid, signal.SIGKILL)
