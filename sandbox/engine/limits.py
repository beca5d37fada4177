"""What the shared Lab lets one visitor do right now; each refusal is a LimitExceeded (HTTP 429).

Per-visitor limits count against `prepsite.visitor.limit_key`: the account, else the anonymous visitor; an
anonymous visitor's address has a ceiling ADDRESS_CEILING_TIMES larger, so people behind one NAT each get
their own budget and a script minting cookies does not. Global budgets bound what all visitors together may put
on the shared workers. Static bounds of one run (size, horizon, worker-seconds) are form validation
in sandbox.params, so they answer 400 before anything here runs.
"""

import contextlib
import time

from redis import Redis
from redis.exceptions import LockError

from prepsite.ratelimit import allow, allow_visitor, window_key
from prepsite.visitor import ADDRESS_CEILING_TIMES, CLI_ANON_ID, SIGN_UP_INVITE
from sandbox.engine import live
from sandbox.engine.budget import MAX_WORKER_SECONDS, admitted_jobs, children_per_message, worst_case_worker_seconds
from sandbox.engine.keys import DYING, MEMBERS, START_LOCK, consumer_kill
from sandbox.models import Experiment

CLI_KEY = f"cli:{CLI_ANON_ID}"  # the command line: free of per-visitor limits (no web visitor's key looks like it)
ACTIVE_PER_VISITOR = 3
STARTS_PER_MINUTE = 10
REDRIVES_PER_MINUTE = 20
GLOBAL_STARTS_PER_MINUTE = 60  # many addresses (or accounts) together
GLOBAL_RUNNING = 40  # experiments running at once, all visitors
KILLS_PER_MINUTE = 6  # a stream/log consumer serves every visitor's runs
GLOBAL_KILLS_PER_MINUTE = 30
GLOBAL_OPEN_JOBS = 5000  # jobs all running experiments may still run (queued, scheduled, held back, duplicates)


class LimitExceeded(Exception):
    """A shared-lab limit; shown to the visitor with HTTP 429."""


def check_start(limit_key: str, runs: list[dict], address_key: str = "") -> None:
    """Refuse starting `runs` (their params) together unless every limit allows all of them. The caller
    holds start_lock(), so what is counted here cannot change before the runs are admitted."""
    n = len(runs)
    if limit_key != CLI_KEY:
        _check_running(limit_key, address_key, n)
        refused = allow_visitor(
            "lab-start", limit_key, address_key, limit=STARTS_PER_MINUTE, window_s=60, fail_open=False, cost=n
        )
        if refused == "visitor":
            raise LimitExceeded(f"At most {STARTS_PER_MINUTE} experiments a minute; try again shortly.")
        if refused == "address":
            raise LimitExceeded(
                f"Your network started {STARTS_PER_MINUTE * ADDRESS_CEILING_TIMES} experiments this minute, the most "
                f"anonymous visitors at one address may. {SIGN_UP_INVITE}"
            )
    if not allow("lab-start", "everyone", limit=GLOBAL_STARTS_PER_MINUTE, window_s=60, fail_open=False):
        raise LimitExceeded("The shared lab is taking many new experiments right now; try again in a minute.")
    active = list(Experiment.objects.active().values_list("pk", flat=True))
    if len(active) + n > GLOBAL_RUNNING:
        raise LimitExceeded(f"{len(active)} experiments are running in the shared lab; try again in a minute.")
    open_jobs = live.open_jobs(active)
    wanted = sum(
        round(admitted_jobs(params) * (1 + params["duplicate_rate"] + children_per_message(params))) for params in runs
    )
    if open_jobs + wanted > GLOBAL_OPEN_JOBS:
        raise LimitExceeded(
            f"The shared lab has {open_jobs} jobs still to run (the limit is {GLOBAL_OPEN_JOBS}); "
            "try a smaller run or again in a minute."
        )


def _check_running(limit_key: str, address_key: str, n: int) -> None:
    running = Experiment.objects.active().filter(limit_key=limit_key).count()
    if running + n > ACTIVE_PER_VISITOR:
        both = " (these would be two more)" if n > 1 else ""
        raise LimitExceeded(
            f"You already have {running} experiments running (the limit is {ACTIVE_PER_VISITOR}){both}; "
            "wait for one to finish or stop it."
        )
    if not address_key:
        return
    ceiling = ACTIVE_PER_VISITOR * ADDRESS_CEILING_TIMES
    at_address = Experiment.objects.active().filter(address_key=address_key).count()
    if at_address + n > ceiling:
        raise LimitExceeded(
            f"{at_address} experiments are running from your network (the most anonymous visitors at one address "
            f"may run is {ceiling}). {SIGN_UP_INVITE}"
        )


@contextlib.contextmanager
def start_lock(redis: Redis):
    """Starts take turns: every cap is checked and taken (the runs admitted) before the next start checks.
    Simultaneous starts each saw room and together went past the caps (7,979 open jobs of 5,000)."""
    lock = redis.lock(START_LOCK, timeout=START_LOCK_TTL_S, blocking_timeout=START_LOCK_WAIT_S)
    if not lock.acquire():
        raise LimitExceeded("The shared lab is busy starting other experiments; try again in a few seconds.")
    try:
        yield
    finally:
        with contextlib.suppress(LockError):
            lock.release()


START_LOCK_TTL_S = 60  # a start that dies holding the lock frees it by then; a start takes well under a second
START_LOCK_WAIT_S = 20


def check_redrive(experiment: Experiment, jobs: int, limit_key: str) -> float:
    """Refuse a redrive past the experiment's worker-time budget; returns the worker-seconds it asks for."""
    if limit_key != CLI_KEY and allow_visitor(
        "lab-redrive", limit_key, experiment.address_key, limit=REDRIVES_PER_MINUTE, window_s=60, fail_open=False
    ):
        raise LimitExceeded(f"At most {REDRIVES_PER_MINUTE} redrives a minute; the DLQ is not going anywhere.")
    cost = worst_case_worker_seconds({**experiment.params, "duplicate_rate": 0}, jobs=jobs)
    spent = live.Recorder(experiment.pk).charge_budget(0)
    if spent + cost > MAX_WORKER_SECONDS:
        raise LimitExceeded(
            f"Redriving {jobs} jobs could use {cost:,.0f} more worker-seconds; this experiment has used "
            f"{spent:,.0f} of its {MAX_WORKER_SECONDS}. Discard some, or start a new run."
        )
    return cost


# Every way a consumer can die on a visitor's behalf ("kill this consumer", "crash its worker" on a stream or
# log run, a crash_rate fault, kill_consumer_at_s) asks this one script first, so the checks and the spending
# are one step: simultaneous requests cannot all see "two alive" and kill both. A consumer granted its death
# counts as dying (not alive) for DYING_S, so it is never counted twice while it finishes another run's message.
# KEYS: members, dying, visitor's counter, lab-wide counter, kill requests of `name` (or "" for a self-kill)
# ARGV: now, session_s, name, visitor limit, lab-wide limit, window_s, experiment id, dying_s
_TAKE_KILL = """
local now = tonumber(ARGV[1])
local spent = redis.call('INCR', KEYS[3])
if spent == 1 then redis.call('EXPIRE', KEYS[3], tonumber(ARGV[6]) * 2) end
if spent > tonumber(ARGV[4]) then return 'visitor' end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local alive = 0
local found = false
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[2]), '+inf')) do
  if not redis.call('ZSCORE', KEYS[2], member) then
    alive = alive + 1
    if member == ARGV[3] then found = true end
  end
end
if not found then return 'gone' end
if alive < 2 then return 'last' end
if tonumber(redis.call('GET', KEYS[4]) or '0') >= tonumber(ARGV[5]) then return 'everyone' end
redis.call('INCR', KEYS[4])
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[6]) * 2)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[8]), ARGV[3])
if KEYS[5] ~= '' then
  redis.call('SADD', KEYS[5], ARGV[7])
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[8]))
end
return 'ok'
"""
DYING_S = 30  # as long as a kill request waits (a consumer finishes another run's message first, <= 10 s)


def kill_refused(reason: str, name: str) -> str:
    """What the visitor is told when take_consumer_kill refuses."""
    return {
        "visitor": f"At most {KILLS_PER_MINUTE} consumer kills a minute (crashes of your runs' consumers included); "
        "watch this one's partitions move first.",
        "gone": f"No live consumer is called {name}; it may have just died. Pick one from the list.",
        "last": "Only one consumer is alive (the others are dead or dying): killing it would stall every stream "
        "and log run. Try again in a few seconds.",
        "everyone": "Many consumers were killed in the shared lab this minute; try again in a minute.",
    }[reason]


def take_consumer_kill(
    redis: Redis, *, name: str, limit_key: str, experiment_id: int, request: bool, session_s: float
) -> str | None:
    """Spend a kill of consumer `name` for visitor `limit_key`, atomically; None when granted, else the
    refusal ("visitor", "gone", "last" or "everyone"; kill_refused() words it).

    request: leave the consumer a kill request for `experiment_id` (the live view's button); a consumer about
    to SIGKILL itself (a crash fault) asks with request=False. Every call spends one of the visitor's
    KILLS_PER_MINUTE; only a granted kill spends the lab-wide budget (guessing at names costs the lab nothing).
    """
    keys = (
        MEMBERS,
        DYING,
        window_key("lab-kill", limit_key, 60),
        window_key("lab-kill", "everyone", 60),
        consumer_kill(name) if request else "",
    )
    answer = redis.eval(
        _TAKE_KILL, len(keys), *keys,
        time.time(), session_s, name, KILLS_PER_MINUTE, GLOBAL_KILLS_PER_MINUTE, 60, experiment_id, DYING_S,
    )  # fmt: skip
    answer = answer.decode() if isinstance(answer, bytes) else answer
    return None if answer == "ok" else answer
