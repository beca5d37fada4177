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

from redis import Redis
from redis.exceptions import RedisError

from prepsite.redis_conn import get_redis, wait_for_wake
from sandbox import delivery
from sandbox.delivery import Delivery
from sandbox.engine import experiments, fairshare, handler, keys, limits, live

log = logging.getLogger("sandbox.lab")
IDLE_MAX_S = 0.2  # while runs are active: a poll at most this far apart (leases and retries run on time)
IDLE_WAIT_S = 1.0  # while none is: block this long for a wake (sandbox.delivery.wake), then beat


class Consumer:
    """One consumer process: serves every active stream and log experiment in turns."""

    def __init__(self, slot: int, redis: Redis | None = None):
        self.redis = redis or get_redis()
        self.name = delivery.consumer_name(slot, os.getpid())
        self.slot = slot
        self.stopping = False
        self.turn = 0
        self.last_beat = 0.0
        self.visitors: dict[int, str | None] = {}  # run -> its visitor's rate key (fixed for the run's life)
        self.held: set[str] = set()  # lease keys this consumer took (the log model's partitions)

    # --- group membership
    def heartbeat(self, doing: str = "", run: int | None = None) -> None:
        """Renew membership; die here if a live view asked (limits.take_consumer_kill granted it). `run`: the
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
        for lease in self.held:
            pipe.delete(lease)
        pipe.execute()

    def alive(self, name: str) -> bool:
        score = self.redis.zscore(delivery.MEMBERS, name)
        return score is not None and score > time.time() - delivery.SESSION_S

    # --- the loop
    def run_once(self, active: dict[int, delivery.ConsumedDeliveryModel]) -> bool:
        """One turn over every active experiment (`delivery.active`); True if any message was handled."""
        ids = sorted(active)
        self.turn += 1
        ids = ids[self.turn % len(ids) :] + ids[: self.turn % len(ids)]
        names = delivery.members(self.redis)
        working = self.working_on(names)
        worked = False
        for experiment_id in ids:
            if self.stopping:
                break
            context = delivery.context_of(self.redis, experiment_id)
            if context is None:
                self.redis.hdel(delivery.ACTIVE, str(experiment_id))
                continue
            params, run = context
            visitor = self.share_of(experiment_id)
            if visitor is not None and not delivery.take_slot(self.redis, visitor, self.name):
                continue  # its visitor's consumers are all busy: their fair share (sandbox.delivery.share_consumers)
            # A consumer busy with another visitor's message is no owner for this run's partitions now: they go to
            # the consumers this visitor can have (its fair share), or a hog's ten-second messages stall them.
            free = [name for name in names if name not in working or self.share_of(working[name]) == visitor]
            try:
                worked |= active[experiment_id].turn(self, experiment_id, params, run, free or names)
            finally:
                if visitor is not None:
                    delivery.give_slot(self.redis, visitor, self.name)
        return worked

    def working_on(self, names: list[str]) -> dict[str, int]:
        """The run each other live consumer is working a message of right now."""
        others = [name for name in names if name != self.name]
        infos = self.redis.hmget(delivery.MEMBER_INFO, others) if others else []
        working = {}
        for name, raw in zip(others, infos, strict=True):
            with contextlib.suppress(ValueError, TypeError):
                info = json.loads(raw or "{}")
                if info.get("doing") and info.get("run") is not None:
                    working[name] = int(info["run"])
        return working

    def share_of(self, experiment_id: int) -> str | None:
        """The rate key whose share of the consumers a run's messages use (its visitor's); None for the command
        line, which is free of per-visitor limits (the operator's own terminal) and of this one."""
        if experiment_id not in self.visitors:
            owner = self.owner_of(experiment_id)
            self.visitors[experiment_id] = None if owner == limits.CLI_KEY else fairshare.rate_key(owner)
        return self.visitors[experiment_id]

    def serve(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        self.heartbeat()
        log.info("lab consumer %s: serving stream and log experiments", self.name)
        idle = 0.05
        try:
            while not self.stopping:
                try:
                    if time.time() - self.last_beat > 0.5:
                        self.heartbeat()
                    active = delivery.active(self.redis)
                    if not active:  # nothing to poll for: a new run wakes us (delivery.wake)
                        wait_for_wake(self.redis, keys.consumer_wake(self.name), IDLE_WAIT_S)
                        continue
                    worked = self.run_once(active)
                except RedisError as exc:  # Redis restarting: wait for it rather than die
                    log.warning("lab consumer %s: Redis unavailable (%s); retrying in 1 s", self.name, exc)
                    time.sleep(1)
                    continue
                if worked:
                    idle = 0.05
                    continue
                # Idle turns of an active run back off from 20 to 5 a second: a quiet run costs the shared
                # CPU little, and a new message waits at most 0.2 s longer.
                time.sleep(idle)
                idle = min(IDLE_MAX_S, idle * 2)
        finally:
            with contextlib.suppress(RedisError):
                self.leave()

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
        model = delivery.model_for(d.params)

        def on_beat() -> None:
            self.heartbeat(doing, d.experiment_id)
            model.extend(self, d)

        def may_crash() -> str | None:
            """A crash fault or "crash its worker" kills this shared process only within the lab's budgets."""
            refused = limits.take_consumer_kill(
                self.redis, name=self.name, limit_key=self.owner_of(d.experiment_id), experiment_id=d.experiment_id,
                request=False, session_s=delivery.SESSION_S,
            )  # fmt: skip
            return limits.kill_refused(refused, self.name) if refused else None

        try:
            outcome = handler.process(
                recorder, d.job, job_id=job_id, worker=self.name, run=d.run,
                timeout_s=float(d.params["timeout_s"]), on_beat=on_beat, beat_s=model.beat_s(d.params),
                redeliver=lambda: ack.update(lost=True), may_crash=may_crash,
            )  # fmt: skip
        except (handler.TransientError, handler.PoisonMessage, handler.AttemptTimeout, handler.CrashContained) as exc:
            kinds = {handler.AttemptTimeout: "timeout", handler.CrashContained: "crash"}
            kind = kinds.get(type(exc), "error")
            self._failed(recorder, d, kind, f"{type(exc).__name__}: {exc}", final=d.deliveries >= limit)
            log.info("lab exp %s job %s delivery %s/%s: %s (injected)", d.experiment_id, d.job, d.deliveries, limit,
                     type(exc).__name__)  # fmt: skip
        else:
            log.info("lab exp %s job %s delivery %s/%s: %s", d.experiment_id, d.job, d.deliveries, limit, outcome)
            if not ack["lost"]:
                model.done(self, d)
        if recorder.may_be_finished and experiments.finish_if_done(d.experiment_id, self.redis):
            self.redis.hdel(delivery.ACTIVE, str(d.experiment_id))
        self.heartbeat()  # between messages: where a kill deferred by another run's message lands

    def owner_of(self, experiment_id: int) -> str:
        """The visitor whose budgets a crash of this run's message spends (written at admission)."""
        owner = self.redis.hget(live.key(experiment_id, "meta"), "visitor")
        return owner.decode() if owner else f"run:{experiment_id}"

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
        model = delivery.model_for(d.params)
        if final:
            first = recorder.attempt_failed(job=d.job, job_id=live.job_id_for(d.experiment_id, d.job), kind=kind,
                                            error=error, retry_at=None)  # fmt: skip
            if first:  # a late duplicate of a message already settled is not dead-lettered twice
                model.dead_letter(self.redis, recorder, d, error)
            model.done(self, d)
            return
        wait = 0.0 if retry_now else model.retry_wait(self.redis, recorder, d)
        retry_at = time.time() + wait
        recorder.attempt_failed(job=d.job, job_id=live.job_id_for(d.experiment_id, d.job), kind=kind,
                                error=error, retry_at=retry_at)  # fmt: skip
        if not retry_now:  # a consumer that died mid-message: this delivery is already its retry
            model.retry(self, recorder, d, retry_at)
