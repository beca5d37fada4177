"""`pipeline`: three stages with a queue before each later one. Stage 1 is the front: the run's own messages
(their arrivals, retries and DLQ are the engine's). Each item then waits in a Redis list before stage 2 and
another before stage 3, and each later stage has one consumer: a chain of real RQ jobs, each working its queue for
up to a second, at most one queued or running per stage, every one in the visitor's fair share. Stage 3 slows down `slow_at_s` after the start.

Unbounded (`stage_bound` 0), the queue before the slow stage grows and its oldest item ages while the front
accepts everything. Bounded, a stage whose next queue is full parks instead of taking an item (the next stage
wakes it when it takes one), so its own queue fills, and the front sheds what it cannot hand on: back-pressure.

Every push and take is one Lua script, so an item is never stranded between a stage going idle and a new
item arriving, and each of the front's messages is handed on at most once (a second delivery is suppressed).
"""

import time

from redis import Redis
from rq import Retry
from rq.rate_limit import RateLimit

from sandbox.engine import live, rq_storage
from sandbox.workflows.fanin import RATE_KEY
from sandbox.workflows.outbox import chance

STAGE = "sandbox.workflows.jobs.pipeline_stage"
SLICE_S = 1.0  # a consumer job works its queue this long, then yields its slot to the queue behind it
LATER = (2, 3)  # the stages with a queue before them
QUEUE = {2: "pl:q2", 3: "pl:q3"}
BUSY = "pl:busy"  # stage -> 1 while a consumer job of it is queued or running
PARKED = "pl:parked"  # stage -> 1 while it waits for room in the next queue
SEEN = "pl:seen"  # messages the front has handed on (or shed): a second delivery changes nothing
MAX = "pl:max"  # d<stage> / a<stage>: the deepest queue and the oldest item seen
SERIES = "pl:ts"  # "<second>:d<stage>" / "<second>:a<stage>": the same, per second, for the live view
SEQ = "pl:seq"  # consumer jobs enqueued (their ids)
KEYS = (*QUEUE.values(), BUSY, PARKED, SEEN, MAX, SERIES, SEQ)
# Kept by the stages themselves in the live counters (HINCRBY).
STAGE_COUNTERS = ("done_stage1", "done_stage2", "done_stage3", "shed", "stage_retries", "stage_dead", "pl_stopped")

_MAX_UPDATE = """
local function raise(hash, field, value)
  local current = redis.call('HGET', hash, field)
  -- a first value is written even when 0: a queue that drained shows 0 that second, not its last depth
  if not current or value > tonumber(current) then redis.call('HSET', hash, field, value) end
end
local function note(maxkey, series, second, field, value)
  raise(maxkey, field, value)
  raise(series, second .. ':' .. field, value)
end
"""

# KEYS: next queue, busy, max, series, counters, seen ('' when a stage hands on), parked; ARGV: next stage, item, now,
# bound, from the front (1/0), ttl. Returns shed, duplicate, queued, or wake (the next stage needs a consumer job).
# A parked stage is not woken here: stage 3 wakes it when it makes room, and waking it twice would run two consumers
# of one stage at once, both passing the bound check (seen under load: a queue bounded at 5 held 6).
_PUSH = (
    _MAX_UPDATE
    + """
local now = tonumber(ARGV[3])
if ARGV[5] == '1' then
  if redis.call('HSETNX', KEYS[6], ARGV[2], 1) == 0 then return 'duplicate' end
  redis.call('EXPIRE', KEYS[6], ARGV[6])
  if tonumber(ARGV[4]) > 0 and redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[4]) then
    redis.call('HINCRBY', KEYS[5], 'shed', 1)
    return 'shed'
  end
  redis.call('HINCRBY', KEYS[5], 'done_stage1', 1)
end
redis.call('RPUSH', KEYS[1], ARGV[2] .. ':' .. ARGV[3])
note(KEYS[3], KEYS[4], math.floor(now), 'd' .. ARGV[1], redis.call('LLEN', KEYS[1]))
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[6]) end
if redis.call('HGET', KEYS[2], ARGV[1]) == '1' then return 'queued' end
if redis.call('HGET', KEYS[7], ARGV[1]) == '1' then return 'queued' end
redis.call('HSET', KEYS[2], ARGV[1], '1')
return 'wake'
"""
)

# KEYS: q2, q3, busy, parked, max, series, stop flag, counters; ARGV: stage, bound, now.
# Returns {item or a state (stopped, parked, idle), 1 if stage 2 was woken (stage 3 made room)}.
_TAKE = (
    _MAX_UPDATE
    + """
local stage = tonumber(ARGV[1])
local now = tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[7]) == 1 then
  -- the run was stopped: whatever still waits in either queue ends here, counted
  local waiting = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2])
  redis.call('DEL', KEYS[1], KEYS[2])
  if waiting > 0 then redis.call('HINCRBY', KEYS[8], 'pl_stopped', waiting) end
  redis.call('HSET', KEYS[3], ARGV[1], '0')
  redis.call('HDEL', KEYS[4], '2')
  return {'stopped', 0}
end
local mine = KEYS[stage - 1]
if stage == 2 and tonumber(ARGV[2]) > 0 and redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[4], '2', '1')
  redis.call('HSET', KEYS[3], '2', '0')
  return {'parked', 0}
end
local item = redis.call('LPOP', mine)
if not item then
  redis.call('HSET', KEYS[3], ARGV[1], '0')
  return {'idle', 0}
end
local at = tonumber(string.match(item, ':(.+)$'))
note(KEYS[5], KEYS[6], math.floor(now), 'a' .. ARGV[1], math.floor((now - at) * 1000))
local woke = 0
if stage == 3 and redis.call('HGET', KEYS[4], '2') == '1' then
  redis.call('HDEL', KEYS[4], '2')
  redis.call('HSET', KEYS[3], '2', '1')
  woke = 1
end
return {item, woke}
"""
)


def k(experiment_id: int, name: str) -> str:
    return live.key(experiment_id, name)


def rate_key(redis: Redis, experiment_id: int) -> str:
    """The run's visitor's RQ rate-limit key, kept when the run opened: the stages run in their fair share."""
    return (redis.get(k(experiment_id, RATE_KEY)) or b"lab-v-none").decode()


def enqueue_stage(redis: Redis, experiment_id: int, stage: int, params: dict) -> None:
    """The next consumer job of `stage` (its BUSY flag is already set), in the visitor's fair share."""
    key = rate_key(redis, experiment_id)
    n = redis.hincrby(k(experiment_id, SEQ), str(stage), 1)
    redis.expire(k(experiment_id, SEQ), live.TTL_SECONDS)
    slowest = max(params["stage_ms"], params["slow_stage_ms"]) / 1000
    rq_storage.lab_queue(redis).enqueue(
        STAGE,
        args=(experiment_id, stage),
        job_id=f"lab-pl{experiment_id}-{stage}-{n}",
        job_timeout=max(5, int(SLICE_S + slowest * (params["max_retries"] + 1)) + 5),
        result_ttl=60,
        failure_ttl=live.TTL_SECONDS,
        ttl=live.JOB_TTL_SECONDS,
        retry=Retry(max=2, interval=1),  # a consumer whose worker died is restarted, or its stage would stall
        rate_limit=RateLimit(key=key, concurrency=rq_storage.rate_limit_concurrency(redis, key) or 1),
    )


def _push(redis: Redis, experiment_id: int, *, to: int, item: int, params: dict, front: bool) -> str:
    keys = (k(experiment_id, QUEUE[to]), k(experiment_id, BUSY), k(experiment_id, MAX), k(experiment_id, SERIES),
            k(experiment_id, "c"), k(experiment_id, SEEN), k(experiment_id, PARKED))  # fmt: skip
    reply = redis.eval(
        _PUSH, len(keys), *keys, to, item, f"{time.time():.3f}", params["stage_bound"], int(front), live.TTL_SECONDS
    )
    return reply.decode() if isinstance(reply, bytes) else reply


def front(recorder: live.Recorder, job: int, *, params: dict) -> str:
    """Stage 1 (the message job, its work done): hand the item to stage 2's queue, or shed it when it is full."""
    redis, experiment_id = recorder.redis, recorder.experiment_id
    answer = _push(redis, experiment_id, to=2, item=job, params=params, front=True)
    if answer == "wake":
        enqueue_stage(redis, experiment_id, 2, params)
    if answer == "shed":
        recorder.note("shed", job, detail=f"stage 2's queue holds {params['stage_bound']}: the front turned it away")
    return {"shed": "shed", "duplicate": "duplicate_suppressed"}.get(answer, "charged")


def stage_ms(params: dict, stage: int, since_start_s: float) -> int:
    """Stage 3 slows down `slow_at_s` after the run started; the other stages keep `stage_ms`."""
    if stage == 3 and since_start_s >= params["slow_at_s"]:
        return params["slow_stage_ms"]
    return params["stage_ms"]


def run_stage(redis: Redis, experiment_id: int, stage: int, *, params: dict, seed: int) -> str:
    """One consumer job of a later stage: take the oldest item and work it, again, until its queue is empty (idle),
    the next queue is full (parked), the run stopped, or its slice is up (then its successor carries on)."""
    started = time.monotonic()
    while True:
        outcome = _take_one(redis, experiment_id, stage, params=params, seed=seed)
        if outcome in ("stopped", "parked", "idle"):
            return outcome
        if time.monotonic() - started >= SLICE_S:
            enqueue_stage(redis, experiment_id, stage, params)  # BUSY stays set: the next slice
            return outcome


def _take_one(redis: Redis, experiment_id: int, stage: int, *, params: dict, seed: int) -> str:
    keys = (k(experiment_id, QUEUE[2]), k(experiment_id, QUEUE[3]), k(experiment_id, BUSY), k(experiment_id, PARKED),
            k(experiment_id, MAX), k(experiment_id, SERIES), live.flag_key(experiment_id, "stop"),
            k(experiment_id, "c"))  # fmt: skip
    taken, woke = redis.eval(_TAKE, len(keys), *keys, stage, params["stage_bound"], f"{time.time():.3f}")
    if woke:
        enqueue_stage(redis, experiment_id, 2, params)  # stage 3 made room: the parked stage 2 goes on
    taken = taken.decode()
    if taken in ("stopped", "parked", "idle"):
        return taken
    item = int(taken.split(":", 1)[0])
    t0 = float(redis.hget(k(experiment_id, "meta"), "t0") or time.time())
    for attempt in range(1, params["max_retries"] + 2):
        time.sleep(stage_ms(params, stage, time.time() - t0) / 1000)
        if chance(seed, item, stage, attempt, "stage-fails") >= params["stage_fail_rate"]:
            break
        redis.hincrby(k(experiment_id, "c"), "stage_retries", 1)  # retried in place: the queue behind it waits
    else:
        redis.hincrby(k(experiment_id, "c"), "stage_dead", 1)
        return "dead"
    redis.hincrby(k(experiment_id, "c"), f"done_stage{stage}", 1)
    if stage == 2 and _push(redis, experiment_id, to=3, item=item, params=params, front=False) == "wake":
        enqueue_stage(redis, experiment_id, 3, params)
    return "done"


def sample(redis: Redis, experiment_id: int) -> None:
    """The tick's once-a-second look: each queue's depth and its oldest item's age now (an item nobody takes
    ages between takes, which only the takes would miss)."""
    now = time.time()
    pipe = redis.pipeline(transaction=False)
    for name in QUEUE.values():
        pipe.llen(k(experiment_id, name))
        pipe.lindex(k(experiment_id, name), 0)
    replies = pipe.execute()
    for stage, depth, oldest in zip(LATER, replies[::2], replies[1::2], strict=True):
        age = int((now - float(oldest.decode().split(":", 1)[1])) * 1000) if oldest else 0
        for field, value in ((f"d{stage}", depth), (f"a{stage}", age)):
            redis.eval(
                _MAX_UPDATE + "note(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]))",
                2, k(experiment_id, MAX), k(experiment_id, SERIES), int(now), field, value,
            )  # fmt: skip


def counters(experiment_id: int, redis: Redis) -> dict[str, int]:
    peaks = {key.decode(): int(value) for key, value in redis.hgetall(k(experiment_id, MAX)).items()}
    counts = {
        **{f"max_depth_stage{stage}": peaks.get(f"d{stage}", 0) for stage in LATER},
        **{f"max_age_ms_stage{stage}": peaks.get(f"a{stage}", 0) for stage in LATER},
    }
    depth2, depth3 = counts["max_depth_stage2"], counts["max_depth_stage3"]
    # where the backlog built: the stage whose queue grew deepest (0: it never passed one item)
    counts["backlog_stage"] = 0 if max(depth2, depth3) <= 1 else (3 if depth3 >= depth2 else 2)
    return counts


def drained(experiment_id: int, redis: Redis) -> bool:
    """No item waits in a queue and no stage has a consumer job queued or running."""
    pipe = redis.pipeline(transaction=False)
    for name in QUEUE.values():
        pipe.llen(k(experiment_id, name))
    pipe.hvals(k(experiment_id, BUSY))
    *depths, busy = pipe.execute()
    return not any(depths) and not any(flag == b"1" for flag in busy)


def series(experiment_id: int, redis: Redis) -> dict[str, dict[int, int]]:
    """{"d2": {second: deepest}, "a2": {second: oldest ms}, ...} for the live view's chart."""
    out: dict[str, dict[int, int]] = {}
    for field, value in redis.hgetall(k(experiment_id, SERIES)).items():
        second, name = field.decode().split(":", 1)
        out.setdefault(name, {})[int(second)] = int(value)
    return out
