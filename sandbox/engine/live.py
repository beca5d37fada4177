"""An experiment's live state in Redis: counters, a capped event stream, per-second buckets.

Every key of experiment E starts with `lab:exp:E:` and expires with it. Reading the state costs
O(counters + last K events + seconds elapsed), independent of how many jobs the experiment or any
other experiment has.
"""

import json
import secrets
import time
from dataclasses import dataclass, field

from redis import Redis

from prepsite.redis_conn import get_redis
from sandbox.engine import keys
from sandbox.engine import live_scripts as scripts
from sandbox.engine.budget import HORIZON_S

# An experiment's record outlives anything that can still happen to it: its whole schedule fits in
# HORIZON_S, its jobs may wait in a busy queue for JOB_TTL_SECONDS, and the record stays 6 h after.
JOB_TTL_SECONDS = HORIZON_S + 3600
TTL_SECONDS = JOB_TTL_SECONDS + 6 * 3600
EVENTS_KEPT = 500
DEFAULT_ORDER_KEYS = 4
JOB_BEAT_SECONDS = 6  # the janitor treats a job without a beat key for this long as not running

REDRIVE_LOCK_SECONDS = 3  # "redrive all" clicked again within this is the same click
TERMINAL = ("succeeded", "dead_lettered", "stopped")
COUNTERS = (
    "requested", "enqueued", "rejected", "attempts", "failed_attempts", "retries", "timeouts", "crashes",
    "succeeded", "dead_lettered", "stopped", "duplicates_delivered", "duplicates_suppressed", "double_charges",
    "redriven", "discarded", "recovered", "late_outcomes", "redeliveries", "order_violations",
)  # fmt: skip
# What a workflow run (sandbox.workflows) adds to its counters; in its summary only.
WORKFLOW_COUNTERS = (
    "orders", "events_published", "lost", "unsent", "ghosts", "duplicates", "double_effects", "relay_lag_p95_ms",
    "relay_lag_max_ms", "sagas", "completed", "compensated", "needs_human", "half_done", "steps_done",
    "compensations_done", "compensations_failed", "out_of_order_compensations", "batches", "children",
    "children_done", "children_dead", "child_deliveries", "final_runs", "finals_enqueued", "early_finals",
    "batches_finalized_twice", "batches_stuck",
    "done_stage1", "done_stage2", "done_stage3", "shed", "stage_retries", "stage_dead", "pl_stopped",
    "max_depth_stage2", "max_depth_stage3", "max_age_ms_stage2", "max_age_ms_stage3", "backlog_stage",
    "urgent_done", "urgent_p95_ms", "urgent_max_ms", "low_done", "low_p95_ms", "low_throughput",
)  # fmt: skip


def key(experiment_id: int, name: str) -> str:
    return keys.experiment(experiment_id, name)


def flag_key(experiment_id: int, name: str) -> str:
    """A request to the running consumer: stop (the experiment), crash:<job> or stop:<job>."""
    return key(experiment_id, f"flag:{name}")


job_id_for, parse_job_id = keys.job_id_for, keys.parse_job_id  # the record names its jobs


def order_of(job: int, params: dict) -> tuple[int, int]:
    """(order key, sequence within that key) of message `job`: customer k's events arrive in job order."""
    keys = max(1, int(params.get("order_keys", DEFAULT_ORDER_KEYS)))
    return (job - 1) % keys, (job - 1) // keys


def beat_key(job_id: str) -> str:
    return keys.job_beat(job_id)


@dataclass(frozen=True)
class Attempt:
    """What a job learns when its attempt starts: the run's parameters and the state of its flags."""

    params: dict
    seed: int
    number: int
    stop_requested: bool
    consumer_fixed: bool  # the learner pressed "fix the consumer": poison messages now parse
    since_start_s: float  # seconds since the run's first arrival (correlated faults use it)


class Recorder:
    """Writes for one experiment, batched into one pipeline per call."""

    def __init__(self, experiment_id: int, connection: Redis | None = None):
        self.experiment_id = experiment_id
        self.redis = connection or get_redis()
        self.may_be_finished = True  # until a write shows otherwise

    def k(self, name: str) -> str:
        return key(self.experiment_id, name)

    def _event(self, pipe, kind: str, job: int | None = None, **detail) -> None:
        fields = {"t": f"{time.time():.3f}", "kind": kind, "job": "" if job is None else str(job)}
        fields.update({name: str(value) for name, value in detail.items() if value is not None})
        pipe.xadd(self.k("ev"), fields, maxlen=EVENTS_KEPT, approximate=True)

    def _bucket(self, pipe, kind: str, at: float | None = None, amount: int = 1) -> None:
        pipe.hincrby(self.k("ts"), f"{int(at if at is not None else time.time())}:{kind}", amount)

    def _expire(self, pipe, *names: str) -> None:
        for name in names:
            pipe.expire(self.k(name), TTL_SECONDS)

    def discard_all(self) -> None:
        """Delete every key of the experiment."""
        self.redis.delete(*(self.k(name) for name in keys.EVERY_NAME))

    def take_render_lock(self) -> bool:
        return bool(self.redis.set(self.k("render_lock"), 1, nx=True, ex=2))

    def take_redrive_lock(self) -> bool:
        return bool(self.redis.set(self.k("redrive_lock"), 1, nx=True, ex=REDRIVE_LOCK_SECONDS))

    def create(self, *, params: dict, seed: int, requested: int) -> str:
        """Start the experiment's record; returns the run id its jobs carry."""
        self.discard_all()  # ids come from the database; if it was reset while Redis kept data, start clean
        run = secrets.token_hex(6)
        pipe = self.redis.pipeline()
        pipe.set(self.k("params"), json.dumps({"params": params, "seed": seed}), ex=TTL_SECONDS)
        # No "enqueued" until admitted(): with it at 0, every counter added up (0 admitted, 0 ended, nothing
        # running), so a janitor pass between the two writes marked the run finished before its first job.
        counters = {name: 0 for name in COUNTERS if name != "enqueued"} | {"requested": requested}
        pipe.hset(self.k("c"), mapping=counters)
        pipe.hset(self.k("meta"), mapping={"t0": f"{time.time():.3f}", "run": run})
        self._expire(pipe, "c", "meta")
        pipe.execute()
        return run

    def admitted(self, *, arrivals: dict[int, float], rejected: int, schedule: dict) -> None:
        """Record the jobs admitted (with their arrival times and retry schedules) and those rejected."""
        pipe = self.redis.pipeline()
        pipe.hincrby(self.k("c"), "enqueued", len(arrivals))
        pipe.hincrby(self.k("c"), "rejected", rejected)
        if arrivals:
            pipe.hset(self.k("enq"), mapping={str(i): f"{t:.3f}" for i, t in arrivals.items()})
            pipe.hset(self.k("plan"), mapping={str(i): json.dumps(s) for i, s in schedule.items()})
        for at in arrivals.values():
            self._bucket(pipe, "arr", at)
        self._event(pipe, "enqueued", count=len(arrivals))
        if rejected:
            self._event(pipe, "rejected", count=rejected, detail="queue cap reached: shed at admission")
        self._expire(pipe, "enq", "plan", "ts", "ev")
        pipe.execute()

    def begin_attempt(self, *, job: int, job_id: str, pid: int, worker: str, run: str = "") -> "Attempt | None":
        """Start an attempt in one round trip; None when the keys expired or belong to another run."""
        now = time.time()
        reply = self.redis.eval(
            scripts.BEGIN_ATTEMPT, 11,
            self.k("params"), self.k("attempt_no"), self.k("c"), self.k("run"), self.k("sched"),
            beat_key(job_id), self.k("ts"), self.k("ev"), flag_key(self.experiment_id, "stop"), self.k("meta"),
            flag_key(self.experiment_id, "fixed"),
            str(job), json.dumps({"pid": pid, "worker": worker, "since": now}), pid, JOB_BEAT_SECONDS,
            f"{int(now)}:start", TTL_SECONDS, f"{now:.3f}", worker, EVENTS_KEPT, run,
        )  # fmt: skip
        if not reply:
            return None
        raw, attempt, stop, fixed, t0 = reply
        context = json.loads(raw)
        return Attempt(
            params=context["params"], seed=context["seed"], number=int(attempt), stop_requested=bool(stop),
            consumer_fixed=bool(fixed), since_start_s=max(0.0, now - float(t0 or now)),
        )  # fmt: skip

    def beat(self, job_id: str, pid: int) -> None:
        self.redis.set(beat_key(job_id), pid, ex=JOB_BEAT_SECONDS)

    def _mark(self, pipe, job: int, mark: dict) -> None:
        # Attempt marks for the per-job timeline; one list per job.
        pipe.rpush(self.k(f"marks:{job}"), json.dumps(mark))
        pipe.expire(self.k(f"marks:{job}"), TTL_SECONDS)

    def _end_attempt(self, pipe, job: int, job_id: str) -> None:
        pipe.hdel(self.k("run"), str(job))
        pipe.delete(beat_key(job_id))
        self._bucket(pipe, "end")

    def _terminal(self, job: int, state: str) -> bool:
        return bool(self.redis.eval(scripts.SET_TERMINAL, 2, self.k("term"), self.k("c"), str(job), state))

    def _latency(self, pipe, job: int) -> None:
        enq = self.redis.hget(self.k("enq"), str(job))
        if enq is not None:
            pipe.zadd(self.k("lat"), {str(job): round((time.time() - float(enq)) * 1000)})
            pipe.expire(self.k("lat"), TTL_SECONDS)

    def _finish_attempt(
        self, *, job: int, job_id: str, state: str, mark: dict, event: str, counter: str = "", **detail
    ) -> bool:
        """End a running attempt in one round trip; returns True if this was the message's first outcome.

        Also sets `may_be_finished`: whether the experiment looked finished right after this write.
        """
        now = time.time()
        fields = [str(part) for name, value in detail.items() if value is not None for part in (name, value)]
        reply = self.redis.eval(
            scripts.FINISH_ATTEMPT, 9,
            self.k("term"), self.k("c"), self.k("run"), beat_key(job_id), self.k("ts"),
            self.k(f"marks:{job}"), self.k("enq"), self.k("lat"), self.k("ev"),
            str(job), state, f"{now:.3f}", str(int(now)), "ok" if state == "succeeded" else "",
            json.dumps({**mark, "t": now}), counter, TTL_SECONDS, event, EVENTS_KEPT, *fields,
        )  # fmt: skip
        first, finished = reply
        self.may_be_finished = bool(finished)
        return bool(first)

    def succeeded(self, *, job: int, job_id: str, attempt: int, outcome: str) -> bool:
        """outcome: charged, duplicate_suppressed or double_charge. Returns True if this ended the message."""
        counter = {"duplicate_suppressed": "duplicates_suppressed", "double_charge": "double_charges"}.get(outcome, "")
        return self._finish_attempt(
            job=job, job_id=job_id, state="succeeded", mark={"n": attempt, "r": "ok", "e": outcome},
            event="succeeded" if outcome == "charged" else outcome, counter=counter, attempt=attempt,
        )  # fmt: skip

    def applied_in_order(self, job: int, params: dict) -> bool:
        """Record that message `job` took effect; True (and counted) if it overtook an earlier one of its key."""
        order_key, seq = order_of(job, params)
        violated = bool(
            self.redis.eval(scripts.APPLY_IN_ORDER, 2, self.k("order"), self.k("c"), order_key, seq, TTL_SECONDS)
        )
        if violated:
            self.note("order_violation", job, detail=f"customer {order_key}: event {seq + 1} applied after a later one")
        return violated

    def stopped(self, *, job: int, job_id: str, attempt: int, reason: str) -> bool:
        return self._finish_attempt(
            job=job, job_id=job_id, state="stopped", mark={"n": attempt, "r": "stopped", "e": reason},
            event="stopped", attempt=attempt, detail=reason,
        )  # fmt: skip

    def attempt_failed(self, *, job: int, job_id: str, kind: str, error: str, retry_at: float | None) -> bool:
        """kind: error, timeout, crash or abandoned. retry_at None means the job is dead-lettered."""
        pipe = self.redis.pipeline()
        pipe.hget(self.k("attempt_no"), str(job))
        pipe.hget(self.k("run"), str(job))
        raw_attempt, running = pipe.execute()
        attempt = int(raw_attempt or 0)
        started = json.loads(running)["since"] if running else None
        first = False if retry_at is not None else self._terminal(job, "dead_lettered")
        pipe = self.redis.pipeline()
        self._end_attempt(pipe, job, job_id)
        self._bucket(pipe, "fail")
        pipe.hincrby(self.k("c"), "failed_attempts", 1)
        counter = {"timeout": "timeouts", "crash": "crashes", "abandoned": "recovered"}.get(kind)
        if counter:
            pipe.hincrby(self.k("c"), counter, 1)
        mark = {"n": attempt, "r": kind, "t": time.time(), "e": error[:300]}
        if started is not None:
            mark["s"] = started
        if retry_at is not None:
            mark["next"] = retry_at
            pipe.hincrby(self.k("c"), "retries", 1)
            pipe.zadd(self.k("sched"), {str(job): retry_at})
            pipe.hincrby(self.k("retry_hist"), str(int(retry_at)), 1)
            self._bucket(pipe, "arr", retry_at)
            self._expire(pipe, "sched", "retry_hist")
            self._event(
                pipe, "retry_scheduled", job, attempt=attempt, cause=kind, at=f"{retry_at:.0f}", error=error[:200]
            )
        else:
            if first:
                pipe.sadd(self.k("dlq"), str(job))
                pipe.expire(self.k("dlq"), TTL_SECONDS)
                self._latency(pipe, job)
            else:
                pipe.hincrby(self.k("c"), "late_outcomes", 1)
            self._event(pipe, "dead_lettered", job, attempt=attempt, cause=kind, error=error[:200])
        self._mark(pipe, job, mark)
        pipe.execute()
        return first

    def attempt_refused(self, *, job: int, job_id: str, error: str, retry_at: float, refusal: str) -> None:
        """An attempt Redis cut short by refusing a write (full), run again at retry_at without spending a retry.
        Refused as it began (its first write counts it) it is not counted; refused later it ends as failed."""
        began, pipe = self.redis.hget(self.k("run"), str(job)), self.redis.pipeline()
        if began is not None:
            self._end_attempt(pipe, job, job_id)
            pipe.hincrby(self.k("c"), "failed_attempts", 1)
            attempt, since = int(self.redis.hget(self.k("attempt_no"), str(job)) or 0), json.loads(began)["since"]
            mark = {"n": attempt, "r": "error", "t": time.time(), "e": error[:300], "next": retry_at, "s": since}
            self._mark(pipe, job, mark)
        pipe.zadd(self.k("sched"), {str(job): retry_at})
        self._expire(pipe, "sched")
        detail = f"Redis is full and refused a write: the attempt runs again without spending a retry ({refusal})"
        self._event(pipe, "redis_refused", job, at=f"{retry_at:.0f}", error=error[:200], detail=detail)
        pipe.execute()

    def redeliver_once(self, job: int) -> bool:
        """True the first time a message is picked for redelivery (so a redelivery is not redelivered)."""
        if not self.redis.hsetnx(self.k("redelivered"), str(job), 1):
            return False
        self.may_be_finished = False
        pipe = self.redis.pipeline()
        pipe.expire(self.k("redelivered"), TTL_SECONDS)
        pipe.hincrby(self.k("c"), "duplicates_delivered", 1)
        self._bucket(pipe, "arr")
        self._event(pipe, "redelivered", job, detail="ack lost: broker delivers the same job id again")
        pipe.execute()
        return True

    def stopped_before_start(self, jobs: list[int], reason: str) -> int:
        """Jobs taken off the schedule or queue before any worker ran them: terminal as 'stopped'."""
        pipe = self.redis.pipeline()
        for job in jobs:
            pipe.eval(scripts.SET_TERMINAL, 2, self.k("term"), self.k("c"), str(job), "stopped")
        firsts = pipe.execute() if jobs else []
        stopped = [job for job, first in zip(jobs, firsts, strict=True) if first]
        pipe = self.redis.pipeline()
        for job in stopped:
            pipe.zrem(self.k("sched"), str(job))
            self._mark(pipe, job, {"n": 0, "r": "stopped", "t": time.time(), "e": reason})
        if stopped:
            self._event(pipe, "stopped", count=len(stopped), detail=reason)
        pipe.execute()
        return len(stopped)

    def charge_budget(self, worker_seconds: float) -> float:
        """Add to the worker time this experiment has asked for (start, redrives); returns the total."""
        total = float(self.redis.hincrbyfloat(self.k("meta"), "budget_ws", worker_seconds))
        self.redis.expire(self.k("meta"), TTL_SECONDS)
        return total

    def claim_from_dlq(self, job: int) -> bool:
        """Atomically take a job out of the experiment's DLQ; only one of two racing redrives wins."""
        return bool(self.redis.srem(self.k("dlq"), str(job)))

    def return_to_dlq(self, job: int) -> None:
        pipe = self.redis.pipeline()
        pipe.sadd(self.k("dlq"), str(job))
        pipe.expire(self.k("dlq"), TTL_SECONDS)  # the claim may have emptied (deleted) the set
        pipe.execute()

    def redriven(self, job: int) -> None:
        pipe = self.redis.pipeline()
        pipe.hdel(self.k("term"), str(job))
        pipe.hincrby(self.k("c"), "dead_lettered", -1)
        pipe.hincrby(self.k("c"), "redriven", 1)
        pipe.hset(self.k("enq"), str(job), f"{time.time():.3f}")
        pipe.hsetnx(self.k("meta"), "first_redrive", f"{time.time():.3f}")
        pipe.zrem(self.k("lat"), str(job))
        self._bucket(pipe, "arr")
        self._mark(pipe, job, {"n": 0, "r": "redriven", "t": time.time(), "e": "retry budget restored"})
        self._event(pipe, "redriven", job)
        pipe.execute()

    def discarded(self, job: int) -> None:
        pipe = self.redis.pipeline()
        pipe.hincrby(self.k("c"), "discarded", 1)
        self._event(pipe, "discarded", job)
        pipe.execute()

    def fix_consumer(self) -> bool:
        """Deploy the fix: from now on poison messages parse (a redrive can then succeed). True the first time."""
        first = bool(self.redis.set(flag_key(self.experiment_id, "fixed"), 1, nx=True, ex=TTL_SECONDS))
        if first:
            self.note("consumer_fixed", detail="deployed a consumer that accepts the malformed payload")
        return first

    def note(self, kind: str, job: int | None = None, **detail) -> None:
        pipe = self.redis.pipeline()
        self._event(pipe, kind, job, **detail)
        pipe.execute()


@dataclass
class LiveState:
    experiment_id: int
    exists: bool
    counters: dict[str, int] = field(default_factory=dict)
    t0: float = 0.0
    running: dict[int, dict] = field(default_factory=dict)
    scheduled: dict[int, float] = field(default_factory=dict)
    dlq: list[int] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    buckets: dict[str, dict[int, int]] = field(default_factory=dict)
    retry_hist: dict[int, int] = field(default_factory=dict)
    latencies: dict[str, float | None] = field(default_factory=dict)
    finished: bool = False  # decided by scripts.IS_FINISHED, in Redis
    consumer_fixed: bool = False
    first_redrive: float | None = None  # when the first redrive of this run happened
    max_lag: dict[int, int] = field(default_factory=dict)  # stream/log: partition -> most messages behind
    version: str = ""  # what the live view's polls compare (see poll())

    @property
    def terminal(self) -> int:
        return sum(self.counters.get(name, 0) for name in TERMINAL)

    @property
    def open(self) -> int:
        return max(0, self.counters.get("enqueued", 0) - self.terminal)

    @property
    def queued(self) -> int:
        return max(0, self.open - len(self.running) - len(self.scheduled))

    def accounting_holds(self) -> bool:
        c = self.counters
        admitted = c.get("requested", 0) == c.get("enqueued", 0) + c.get("rejected", 0)
        return admitted and (not self.finished or c.get("enqueued", 0) == self.terminal)


def looks_finished(experiment_id: int, connection: Redis | None = None) -> bool:
    """Whether the experiment is finished, in one round trip (checked after jobs before a full read)."""
    redis = connection or get_redis()
    return bool(redis.eval(scripts.FINISHED, 2, key(experiment_id, "c"), key(experiment_id, "run")))


def _latencies(redis: Redis, name: str, slo_fraction: float | None) -> dict[str, float | None]:
    """p50, p95, max (and the SLO's percentile) of the latency set in two round trips."""
    count = redis.zcard(name)
    result: dict[str, float | None] = {"count": count, "p50": None, "p95": None, "max": None, "slo": None}
    if not count:
        return result
    ranks = {"p50": _rank(count, 0.50), "p95": _rank(count, 0.95), "max": count - 1}
    if slo_fraction is not None:
        ranks["slo"] = _rank(count, slo_fraction)
    pipe = redis.pipeline(transaction=False)
    for rank in ranks.values():
        pipe.zrange(name, rank, rank, withscores=True)
    for label, member in zip(ranks, pipe.execute(), strict=True):
        result[label] = member[0][1] if member else None
    return result


def _rank(count: int, fraction: float) -> int:
    return min(count - 1, max(0, round(fraction * count + 0.5) - 1))


def read(
    experiment_id: int, *, events: int = 30, slo_fraction: float | None = None, connection: Redis | None = None
) -> LiveState:
    redis = connection or get_redis()
    k = lambda name: key(experiment_id, name)  # noqa: E731
    # MULTI/EXEC: one consistent snapshot. Interleaved with a worker's write, the DLQ could be read
    # before a job's dead-letter and "finished" after it, and the page would stop polling one job short.
    pipe = redis.pipeline(transaction=True)
    pipe.hgetall(k("c"))
    pipe.hmget(k("meta"), "t0", "first_redrive")
    pipe.hgetall(k("run"))
    pipe.zrange(k("sched"), 0, -1, withscores=True)
    pipe.smembers(k("dlq"))
    pipe.xrevrange(k("ev"), count=max(1, events))
    pipe.hgetall(k("ts"))
    pipe.hgetall(k("retry_hist"))
    pipe.eval(scripts.FINISHED, 2, k("c"), k("run"))
    pipe.exists(flag_key(experiment_id, "fixed"))
    pipe.hgetall(k("maxlag"))
    counters, (t0, first_redrive), running, scheduled, dlq, stream, ts, hist, finished, fixed, lags = pipe.execute()
    if not counters:
        return LiveState(experiment_id, exists=False)
    buckets: dict[str, dict[int, int]] = {}
    for raw_field, raw_value in ts.items():
        second, kind = raw_field.decode().split(":", 1)
        buckets.setdefault(kind, {})[int(second)] = int(raw_value)
    state = LiveState(
        experiment_id,
        exists=True,
        counters={name.decode(): int(value) for name, value in counters.items()},
        t0=float(t0 or 0),
        running={int(j): json.loads(v) for j, v in running.items()},
        scheduled={int(j): score for j, score in scheduled},
        dlq=sorted(int(j) for j in dlq),
        events=[{"id": eid.decode(), **{f.decode(): v.decode() for f, v in data.items()}} for eid, data in stream],
        buckets=buckets,
        retry_hist={int(s): int(n) for s, n in hist.items()},
        finished=bool(finished),
        consumer_fixed=bool(fixed),
        # The same formula as _POLL, from this snapshot: a drawing is tagged with the state it shows.
        version=f"{stream[0][0].decode() if stream else '0'}.{int(time.time() // 2) if running else 0}",
        first_redrive=float(first_redrive) if first_redrive else None,
        max_lag={int(p): int(n) for p, n in lags.items()},
    )
    state.latencies = _latencies(redis, k("lat"), slo_fraction)
    return state


def exists(experiment_id: int, connection: Redis | None = None) -> bool:
    return bool((connection or get_redis()).exists(key(experiment_id, "c")))


def job_marks(experiment_id: int, jobs: list[int], connection: Redis | None = None) -> dict[int, list[dict]]:
    redis = connection or get_redis()
    pipe = redis.pipeline()
    for job in jobs:
        pipe.lrange(key(experiment_id, f"marks:{job}"), 0, -1)
    return {job: [json.loads(m) for m in marks] for job, marks in zip(jobs, pipe.execute(), strict=True)}


def open_jobs(experiment_ids: list[int], connection: Redis | None = None) -> int:
    """Jobs these experiments may still run: admitted and not yet terminal, plus pending redeliveries."""
    redis = connection or get_redis()
    pipe = redis.pipeline(transaction=False)
    for experiment_id in experiment_ids:
        pipe.hmget(key(experiment_id, "c"), "enqueued", *TERMINAL, "duplicates_delivered", "late_outcomes")
    total = 0
    for values in pipe.execute() if experiment_ids else []:
        enqueued, ok, dead, stopped, delivered, late = (int(v or 0) for v in values)
        total += max(0, enqueued - ok - dead - stopped) + max(0, delivered - late)
    return total


def beating(job_ids: list[str], connection: Redis | None = None) -> dict[str, bool]:
    """Whether each running job's work-horse still beats (a dead worker's job stops within JOB_BEAT_SECONDS)."""
    redis = connection or get_redis()
    pipe = redis.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.exists(beat_key(job_id))
    return {job_id: bool(alive) for job_id, alive in zip(job_ids, pipe.execute() if job_ids else [], strict=True)}


def job_plans(experiment_id: int, jobs: list[int], connection: Redis | None = None) -> dict[int, list[float]]:
    """Each job's retry intervals as planned at admission (empty when expired)."""
    redis = connection or get_redis()
    raw = redis.hmget(key(experiment_id, "plan"), [str(job) for job in jobs]) if jobs else []
    return {job: json.loads(plan) if plan else [] for job, plan in zip(jobs, raw, strict=True)}
