"""A stream/log consumer process: serves every running `stream` and `log` experiment in turns.

The delivery models themselves are described in sandbox.delivery; this is the consuming side, run by
`manage.py lab_consumers` (a small pool that restarts a consumer that dies).
"""

import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from prepsite.redis_conn import get_redis
from sandbox import consumer, delivery, experiments, live
from sandbox.presets import DEFAULTS

log = logging.getLogger("sandbox.lab")
IDLE_MAX_S = 0.2

# Take or keep a partition's lease: 1 renewed (ours), 2 newly taken, 0 someone else holds it.
_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 2 end
return 0
"""


@dataclass
class Delivery:
    experiment_id: int
    job: int
    entry_id: str
    stream: str
    partition: int | str
    deliveries: int  # how many times this entry has been handed out, this one included
    params: dict
    run: str


class Consumer:
    """One consumer process: serves every active stream and log experiment in turns."""

    def __init__(self, slot: int, redis: Redis | None = None):
        self.redis = redis or get_redis()
        self.name = f"c{slot}-{os.getpid()}"
        self.slot = slot
        self.stopping = False
        self.turn = 0
        self.last_beat = 0.0
        self.held: set[tuple[int, int | str]] = set()

    # --- group membership
    def heartbeat(self, doing: str = "", run: int | None = None) -> None:
        """Renew membership; die here if a live view asked (see delivery.request_kill). `run`: the
        experiment whose message this consumer is working on, if any."""
        now = time.time()
        info = {"pid": os.getpid(), "slot": self.slot, "doing": doing, "run": run}
        pipe = self.redis.pipeline()
        pipe.zadd(delivery.MEMBERS, {self.name: now})
        pipe.hset(delivery.MEMBER_INFO, self.name, json.dumps(info))
        pipe.smembers(delivery.kill_key(self.name))
        requested = {int(r) for r in pipe.execute()[-1]}
        self.last_beat = now
        if not requested or (run is not None and run not in requested):
            return  # not asked, or working on another run's message: die at a beat between messages
        pipe = self.redis.pipeline()
        pipe.delete(delivery.kill_key(self.name))
        # The pool keeps these runs' leases (they asked to see them run out) and hands back the rest.
        pipe.hset(delivery.MEMBER_INFO, self.name, json.dumps({**info, "killed_for": sorted(requested)}))
        pipe.execute()
        log.info("lab consumer %s: kill requested from the live view of run %s; SIGKILL", self.name, sorted(requested))
        os.kill(os.getpid(), signal.SIGKILL)

    def leave(self) -> None:
        pipe = self.redis.pipeline()
        pipe.zrem(delivery.MEMBERS, self.name)
        pipe.hdel(delivery.MEMBER_INFO, self.name)
        for experiment_id, partition in self.held:
            pipe.delete(live.key(experiment_id, f"lease:{partition}"))
        pipe.execute()

    def alive(self, name: str) -> bool:
        score = self.redis.zscore(delivery.MEMBERS, name)
        return score is not None and score > time.time() - delivery.SESSION_S

    # --- the loop
    def run_once(self) -> bool:
        """One turn over every active experiment; True if any message was handled."""
        if time.time() - self.last_beat > 0.5:
            self.heartbeat()
        active = {int(e): m.decode() for e, m in self.redis.hgetall(delivery.ACTIVE).items()}
        if not active:
            return False
        ids = sorted(active)
        self.turn += 1
        ids = ids[self.turn % len(ids) :] + ids[: self.turn % len(ids)]
        names = delivery.members(self.redis)
        worked = False
        for experiment_id in ids:
            if self.stopping:
                break
            context = delivery.context_of(self.redis, experiment_id)
            if context is None:
                self.redis.hdel(delivery.ACTIVE, str(experiment_id))
                continue
            params, run = context
            if active[experiment_id] == "stream":
                worked |= self.stream_turn(experiment_id, params, run)
            else:
                worked |= self.log_turn(experiment_id, params, run, names)
        return worked

    def serve(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        self.heartbeat()
        log.info("lab consumer %s: serving stream and log experiments", self.name)
        idle = 0.05
        try:
            while not self.stopping:
                try:
                    worked = self.run_once()
                except RedisError as exc:  # Redis restarting: wait for it rather than die
                    log.warning("lab consumer %s: Redis unavailable (%s); retrying in 1 s", self.name, exc)
                    time.sleep(1)
                    continue
                # Idle turns back off from 20 to 5 a second: a quiet run costs the shared CPU little,
                # and a new message waits at most 0.2 s longer.
                if worked:
                    idle = 0.05
                    continue
                time.sleep(idle)
                idle = min(IDLE_MAX_S, idle * 2)
        finally:
            with contextlib.suppress(RedisError):
                self.leave()

    # --- stream model
    def stream_turn(self, experiment_id: int, params: dict, run: str) -> bool:
        stream = live.key(experiment_id, "q")
        timeout_ms = int(float(params.get("visibility_timeout_s", DEFAULTS["visibility_timeout_s"])) * 1000)
        reply = self.redis.xautoclaim(stream, delivery.GROUP, self.name, timeout_ms, "0-0", count=1)
        claimed = [entry for entry in reply[1] if entry and entry[1]]
        if claimed:
            entry_id, fields = claimed[0]
            pending = self.redis.xpending_range(stream, delivery.GROUP, min=entry_id, max=entry_id, count=1)
            deliveries = pending[0]["times_delivered"] if pending else 2
            self.handle(
                self._delivery(experiment_id, params, run, stream, 0, entry_id, fields, deliveries), claimed=True
            )
            return True
        read = self.redis.xreadgroup(delivery.GROUP, self.name, {stream: ">"}, count=1)
        if not read or not read[0][1]:
            return False
        entry_id, fields = read[0][1][0]
        self.handle(self._delivery(experiment_id, params, run, stream, 0, entry_id, fields, 1), claimed=False)
        return True

    def _delivery(self, experiment_id, params, run, stream, partition, entry_id, fields, deliveries) -> Delivery:
        entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        return Delivery(experiment_id, int(fields[b"job"]), entry, stream, partition, deliveries, params, run)

    # --- log model
    def log_turn(self, experiment_id: int, params: dict, run: str, names: list[str]) -> bool:
        worked = False
        partitions: list[int | str] = [*range(int(params.get("partitions", 1))), delivery.RETRY_TOPIC]
        for partition in partitions:
            if delivery.owner(names, experiment_id, partition) != self.name:
                self._release(experiment_id, partition)
                continue
            if not self._lease(experiment_id, partition):
                continue
            if partition == delivery.RETRY_TOPIC:
                worked |= self._retry_topic_turn(experiment_id, params, run)
            else:
                worked |= self._partition_turn(experiment_id, params, run, partition)
        return worked

    def _lease(self, experiment_id: int, partition: int | str) -> bool:
        lease = live.key(experiment_id, f"lease:{partition}")
        taken = self.redis.eval(_LEASE, 1, lease, self.name, delivery.LEASE_MS)
        if taken != 2:
            return taken == 1
        self.held.add((experiment_id, partition))
        owners = live.key(experiment_id, "owner")
        previous = self.redis.hget(owners, str(partition))
        self.redis.hset(owners, str(partition), self.name)
        self.redis.expire(owners, live.TTL_SECONDS)
        if previous and previous.decode() != self.name and partition != delivery.RETRY_TOPIC:
            live.Recorder(experiment_id, self.redis).note(
                "rebalanced", detail=f"partition {partition} moved from {previous.decode()} to {self.name}"
            )
        return True

    def _release(self, experiment_id: int, partition: int | str) -> None:
        if (experiment_id, partition) not in self.held:
            return
        self.held.discard((experiment_id, partition))
        lease = live.key(experiment_id, f"lease:{partition}")
        if self.redis.get(lease) == self.name.encode():
            self.redis.delete(lease)

    def _partition_turn(self, experiment_id: int, params: dict, run: str, partition: int) -> bool:
        k = lambda name: live.key(experiment_id, name)  # noqa: E731
        hold = self.redis.hget(k("hold"), str(partition))
        if hold and float(hold) > time.time():
            return False  # the head is waiting to be retried in place: the partition is blocked
        offset = (self.redis.hget(k("off"), str(partition)) or b"0-0").decode()
        entries = self.redis.xrange(k(f"log:{partition}"), min=f"({offset}", count=1)
        if not entries:
            return False
        entry_id, fields = entries[0]
        budget = self.redis.hincrby(k("budget"), fields[b"job"].decode(), 1)
        stream = k(f"log:{partition}")
        self.handle(self._delivery(experiment_id, params, run, stream, partition, entry_id, fields, budget))
        return True

    def _retry_topic_turn(self, experiment_id: int, params: dict, run: str) -> bool:
        topic = live.key(experiment_id, "retryq")
        due = self.redis.zrangebyscore(topic, "-inf", time.time(), start=0, num=1)
        if not due:
            return False
        job = int(due[0])
        # Invisible while we work; if we die it comes back after the lease (at-least-once, like a queue).
        self.redis.zadd(topic, {str(job): time.time() + delivery.LEASE_MS / 1000 + delivery.SESSION_S})
        budget = self.redis.hincrby(live.key(experiment_id, "budget"), str(job), 1)
        self.handle(Delivery(experiment_id, job, "", topic, delivery.RETRY_TOPIC, budget, params, run))
        return True

    # --- one delivery, any model
    def handle(self, d: Delivery, *, claimed: bool = False) -> None:
        recorder = live.Recorder(d.experiment_id, self.redis)
        job_id = live.job_id_for(d.experiment_id, d.job)
        limit = int(d.params.get("max_retries", 0)) + 1
        if self._recover(recorder, d, claimed, limit):
            return
        self._kill_if_due(recorder, d)
        doing = f"run #{d.experiment_id} order {d.job}"
        self.heartbeat(doing, d.experiment_id)
        ack = {"lost": False}

        def on_beat() -> None:
            self.heartbeat(doing, d.experiment_id)
            if delivery.model_of(d.params) == "stream" and d.params.get("lease_extension") == "on":
                self.redis.xclaim(d.stream, delivery.GROUP, self.name, 0, [d.entry_id], justid=True)
            elif delivery.model_of(d.params) == "log":
                self.redis.set(live.key(d.experiment_id, f"lease:{d.partition}"), self.name, px=delivery.LEASE_MS)

        try:
            outcome = consumer.process(
                recorder, d.job, job_id=job_id, worker=self.name, run=d.run,
                timeout_s=float(d.params.get("timeout_s", DEFAULTS["timeout_s"])), on_beat=on_beat, beat_s=self._beat_s(d),
                redeliver=lambda: ack.update(lost=True),
            )  # fmt: skip
        except (consumer.TransientError, consumer.PoisonMessage, consumer.AttemptTimeout) as exc:
            kind = "timeout" if isinstance(exc, consumer.AttemptTimeout) else "error"
            self._failed(recorder, d, kind, f"{type(exc).__name__}: {exc}", final=d.deliveries >= limit)
            log.info("lab exp %s job %s delivery %s/%s: %s (injected)", d.experiment_id, d.job, d.deliveries, limit,
                     type(exc).__name__)  # fmt: skip
        else:
            log.info("lab exp %s job %s delivery %s/%s: %s", d.experiment_id, d.job, d.deliveries, limit, outcome)
            if not ack["lost"]:
                self._done(d)
        if recorder.may_be_finished and experiments.finish_if_done(d.experiment_id, self.redis):
            self.redis.hdel(delivery.ACTIVE, str(d.experiment_id))
        self.heartbeat()  # between messages: where a kill deferred by another run's message lands

    def _beat_s(self, d: Delivery) -> float:
        """Renew well inside the lease: a third of the visibility timeout (stream), or of the partition lease."""
        if delivery.model_of(d.params) == "stream":
            return min(1.0, float(d.params.get("visibility_timeout_s", DEFAULTS["visibility_timeout_s"])) / 3)
        return min(1.0, delivery.LEASE_MS / 3000)

    def _kill_if_due(self, recorder: live.Recorder, d: Delivery) -> None:
        """The rebalance preset: once, `kill_consumer_at_s` into the run, this consumer dies mid-message."""
        at = float(d.params.get("kill_consumer_at_s") or 0)
        t0 = float(self.redis.hget(recorder.k("meta"), "t0") or 0)
        if at <= 0 or time.time() - t0 < at or not self.redis.set(recorder.k("flag:killed"), 1, nx=True, ex=3600):
            return
        recorder.note("consumer_killed", d.job, detail=f"{self.name} gets SIGKILL mid-message (kill_consumer_at_s)")
        self.redis.set(live.flag_key(d.experiment_id, f"crash:{d.job}"), 1, ex=30)

    def _recover(self, recorder: live.Recorder, d: Delivery, claimed: bool, limit: int) -> bool:
        """Before working a message again, account for the delivery before it. True if it went to the DLQ."""
        running = self.redis.hget(recorder.k("run"), str(d.job))
        worker = json.loads(running).get("worker", "") if running else ""
        if running and worker != self.name and self.alive(worker):
            # Its first consumer is still working on it: the lease ran out under a live consumer.
            pipe = self.redis.pipeline()
            pipe.hincrby(recorder.k("c"), "duplicates_delivered", 1)
            pipe.execute()
            recorder.note(
                "redelivered", d.job,
                detail=f"visibility timeout expired while {worker} still works: a second consumer gets it",
            )  # fmt: skip
            recorder.may_be_finished = False
            return False
        if running:
            # Its consumer died mid-message: that delivery failed; this one is its retry (or the DLQ's).
            final = d.deliveries - 1 >= limit
            error = f"consumer {worker} died mid-message; delivered again after its lease ran out"
            self._failed(recorder, d, "crash", error, final=final, retry_now=True)
            return final
        return False

    def _failed(
        self, recorder: live.Recorder, d: Delivery, kind: str, error: str, *, final: bool, retry_now: bool = False
    ) -> None:
        if final:
            first = recorder.attempt_failed(job=d.job, job_id=live.job_id_for(d.experiment_id, d.job), kind=kind,
                                            error=error, retry_at=None)  # fmt: skip
            if first:  # a late duplicate of a message already settled is not dead-lettered twice
                self.redis.xadd(recorder.k("dlqs"), {"job": d.job, "error": error[:200]})
                self.redis.expire(recorder.k("dlqs"), live.TTL_SECONDS)
            self._done(d)
            return
        wait = 0.0 if retry_now else self._wait(recorder, d)
        retry_at = time.time() + wait
        recorder.attempt_failed(job=d.job, job_id=live.job_id_for(d.experiment_id, d.job), kind=kind,
                                error=error, retry_at=retry_at)  # fmt: skip
        if retry_now or delivery.model_of(d.params) == "stream":
            return  # the stream redelivers by itself, after the visibility timeout
        if d.partition == delivery.RETRY_TOPIC or d.params.get("on_failure", DEFAULTS["on_failure"]) == "retry_topic":
            self.redis.zadd(recorder.k("retryq"), {str(d.job): retry_at})
            self.redis.expire(recorder.k("retryq"), live.TTL_SECONDS)
            if d.partition != delivery.RETRY_TOPIC:
                self._done(d)  # parked: the partition moves on
        else:
            self.redis.hset(recorder.k("hold"), str(d.partition), retry_at)  # head-of-line: wait in place
            self.redis.expire(recorder.k("hold"), live.TTL_SECONDS)

    def _wait(self, recorder: live.Recorder, d: Delivery) -> float:
        if delivery.model_of(d.params) == "stream":
            return float(d.params.get("visibility_timeout_s", DEFAULTS["visibility_timeout_s"]))
        plan = json.loads(self.redis.hget(recorder.k("plan"), str(d.job)) or "[]")
        return float(plan[min(d.deliveries, len(plan)) - 1]) if plan else 1.0

    def _done(self, d: Delivery) -> None:
        """Acknowledge (stream), commit the offset (partition) or drop from the retry topic."""
        k = lambda name: live.key(d.experiment_id, name)  # noqa: E731
        if delivery.model_of(d.params) == "stream":
            if self.redis.xack(d.stream, delivery.GROUP, d.entry_id):  # only the first ack moves the lag
                keys = (k("off"), k("done"), k("prod"), k("ts"))
                self.redis.eval(delivery.COMMIT, 4, *keys, 0, d.entry_id, live.TTL_SECONDS, int(time.time()))
        elif d.partition == delivery.RETRY_TOPIC:
            self.redis.zrem(d.stream, str(d.job))
        else:
            self.redis.hdel(k("hold"), str(d.partition))
            keys = (k("off"), k("done"), k("prod"), k("ts"))
            self.redis.eval(delivery.COMMIT, 4, *keys, d.partition, d.entry_id, live.TTL_SECONDS, int(time.time()))
