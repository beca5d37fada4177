"""Named Lab experiments. The names are a contract: Study and Drills link to them.

A preset is a lesson: its `setup` (the givens, shown before the run, on the card and beside the
prediction) never states a result; its `explanation` is shown only after the run. A new preset adds at
least: name, title, setup, explanation, section and params (tests hold every preset to that); what it
teaches around the run (answers, headline, Try next, "why?") is in sandbox.engine.lessons.
"""

from dataclasses import dataclass, field

DEFAULTS: dict = {
    "jobs": 20,
    "failure_rate": 0.0,
    "poison_rate": 0.0,
    "duration_ms": 200,
    "duration_spread_ms": 100,
    "timeout_s": 5,
    "max_retries": 3,
    "backoff": "exponential",
    "backoff_base_s": 1,
    "backoff_cap_s": 16,
    "jitter": "full",
    "idempotency": "on",
    "duplicate_rate": 0.0,
    "queue_cap": 200,
    "concurrency": 2,
    "crash_rate": 0.0,
    "outage_s": 0.0,
    "arrival_per_s": 0.0,
    "slo_seconds": 10.0,
    "slo_percentile": 95,
    # Delivery model (sandbox.delivery): RQ, a stream with a consumer group, or a partitioned log.
    "model": "rq",
    "visibility_timeout_s": 5.0,
    "lease_extension": "off",
    "partitions": 4,
    "order_keys": 4,
    "on_failure": "retry_topic",
    "kill_consumer_at_s": 0.0,
    # Workflow families (sandbox.workflows): what the request handler around the queue does, and its faults.
    "workflow": "none",
    "publish_at": "on_commit",
    "commit_crash_rate": 0.0,
    "rollback_rate": 0.0,
    "relay_crash_rate": 0.0,
    "step_fail_rate": 0.0,
    "compensation_fail_rate": 0.0,
    "fan_out": 5,
    "fan_in": "atomic",
    "child_fail_rate": 0.0,
    "child_duplicate_rate": 0.0,
    # pipeline: stages 2 and 3 after the front (the run's messages), a queue before each
    "stage_ms": 50,
    "slow_stage_ms": 50,
    "slow_at_s": 0.0,
    "stage_bound": 0,
    "stage_fail_rate": 0.0,
    # priority-inversion: every k-th message is urgent and short; slots only urgent jobs may use
    "urgent_every": 0,
    "urgent_ms": 50,
    "reserved": 0,
}


@dataclass(frozen=True, kw_only=True)
class Preset:
    name: str
    title: str
    setup: str  # the givens in one line: on the card and beside the prediction; never a result
    explanation: str  # why it happened: shown only in "What happened", after the run
    section: str  # the Study chapter that explains it
    anchor: str = ""  # the heading in that chapter ("Read why" lands there)
    params: dict = field(default_factory=dict)
    drill: str = ""  # a drill's slug, when no drill names the preset itself

    def parameters(self) -> dict:
        return {**DEFAULTS, **self.params}


# The faults between the queue and everything else (issue #26): on real jobs and the site's own database.
_ORDERS = {
    "jobs": 40,
    "arrival_per_s": 10.0,
    "duration_ms": 50,
    "duration_spread_ms": 0,
    "max_retries": 0,
    "commit_crash_rate": 0.1,
    "rollback_rate": 0.1,
    "relay_crash_rate": 0.3,
}
WORKFLOW_PRESETS = [
    Preset(
        name="dual-write",
        title="Dual write: save, then publish",
        setup="Each request saves an order, then publishes 'order placed' itself after its COMMIT; some requests "
        "die right after the COMMIT and some transactions roll back.",
        explanation="Two systems, two writes, no shared transaction: a process that dies between the COMMIT and the "
        "publish leaves an order nobody hears about (a lost event), one per such death. Publishing inside the "
        "transaction swaps the failure: a transaction that rolls back after its publish leaves an event about an "
        "order that does not exist (a ghost). No ordering of the two writes removes both; the outbox does.",
        section="data-and-request-flow",
        anchor="hop-4-service-to-queue",
        params={**_ORDERS, "workflow": "dual_write"},
        drill="transactional-outbox",
    ),
    Preset(
        name="outbox",
        title="Transactional outbox with a relay",
        setup="The same requests and faults, but the event is a row in the order's own transaction; a relay job "
        "publishes the rows, marks them sent, and sometimes dies between the two.",
        explanation="The event row commits or rolls back with its order, so nothing is lost and nothing is a "
        "ghost. The price is at-least-once publishing: a relay that dies after publishing and before marking "
        "the rows sent publishes them again, so the consumer must be idempotent (it records each event id and "
        "acts once). The relay claims rows with FOR UPDATE SKIP LOCKED on PostgreSQL (a lease on SQLite), so two "
        "relays never publish the same row at the same moment.",
        section="data-and-request-flow",
        anchor="hop-4-service-to-queue",
        params={**_ORDERS, "workflow": "outbox"},
        drill="transactional-outbox",
    ),
    Preset(
        name="saga",
        title="Saga: reserve, charge, ship — or undo",
        setup="Each order is a saga of reserve stock, charge and ship, run by an orchestrator that keeps its state "
        "in the database; a step sometimes fails for good, and a compensation sometimes fails for a while.",
        explanation="A step that fails for good is answered by undoing the steps already done, newest first. A "
        "compensation that fails is retried with backoff and resumes from the saved state, so no step runs "
        "twice; one that fails on every attempt parks the saga in the DLQ for a human. The invariant is that no "
        "saga is left half-done: each ends completed, compensated, or visibly waiting for a person.",
        section="workflows",
        anchor="sagas-and-compensation",
        params={
            "workflow": "saga",
            "jobs": 30,
            "arrival_per_s": 10.0,
            "duration_ms": 50,
            "duration_spread_ms": 0,
            "step_fail_rate": 0.15,
            "compensation_fail_rate": 0.5,
            "max_retries": 2,
            "backoff": "fixed",
            "backoff_base_s": 1,
            "backoff_cap_s": 1,
        },
        drill="workflow-orchestration",
    ),
    Preset(
        name="fan-in",
        title="Fan-out, fan-in: close the batch once",
        setup="Each message is a batch that fans out child jobs, and a final step must run once per batch after "
        "every child; children fail and retry, and some are delivered twice.",
        explanation="With the naive design each child adds one to a counter, and whichever sees the batch size runs "
        "the final. A child delivered twice counts twice, so the count reaches the size before every child is "
        "done (an early final), and later children see it again (a repeated final). The atomic design records "
        "each child id once in a set and closes the batch with one compare-and-set: the final runs exactly once, "
        "after the last child.",
        section="workflows",
        anchor="fan-out-and-fan-in-in-rq",
        params={
            "workflow": "fan_in",
            "fan_in": "naive",
            "jobs": 6,
            "fan_out": 5,
            "arrival_per_s": 4.0,
            "duration_ms": 100,
            "duration_spread_ms": 0,
            "child_fail_rate": 0.2,
            "child_duplicate_rate": 0.3,
            "max_retries": 2,
            "backoff": "fixed",
            "backoff_base_s": 1,
            "backoff_cap_s": 1,
        },
        drill="workflow-orchestration",
    ),
    Preset(
        name="pipeline",
        title="Pipeline: the last stage slows down",
        setup="48 items at 6 a second pass three stages, a single consumer each, with a queue before stages 2 "
        "and 3: 20, 50 and 50 ms an item, until stage 3 slows to 400 ms 2 s in. Unbounded queues.",
        explanation="Before the slowdown every stage keeps up: 6 items a second need 0.3 s of work a second at "
        "each later stage. After it, stage 3 serves 1000 ÷ 400 = 2.5 items a second while 6 still arrive, so the "
        "queue before it grows by 6 − 2.5 = 3.5 a second for the 6 s of arrivals left: about 21 deep at the "
        "peak, and its oldest item waits about 21 × 0.4 ≈ 8 s. Stage 2's queue stays short (it waits only while "
        "other jobs hold the worker slots), and the front, which sees none of it, accepts every item: an unbounded queue turns overload into age. Bound the queues "
        "and the pressure travels back: the queue before stage 3 fills, stage 2 waits for room, its own queue "
        "fills, and the front sheds the rest, while no item waits much longer than the bound × 0.4 s at stage 3. "
        "Each stage's consumer is a real RQ job in your fair share of the workers, beside the front's jobs, and "
        "RQ's scheduler lets the arrivals in once a second, 6 at a time, so a bound that small sheds a few "
        "even before the slowdown.",
        section="core-concepts",
        anchor="backpressure",
        params={
            "workflow": "pipeline",
            "jobs": 48,
            "arrival_per_s": 6.0,
            "duration_ms": 20,
            "duration_spread_ms": 0,
            "stage_ms": 50,
            "slow_stage_ms": 400,
            "slow_at_s": 2.0,
            "stage_bound": 0,
            "concurrency": 3,
            "max_retries": 1,
            "backoff": "fixed",
        },
        drill="backpressure-load-shedding",
    ),
    Preset(
        name="priority-inversion",
        title="Priority inversion: urgent jobs behind long ones",
        setup="18 jobs arrive at 6 a second on 2 worker slots; every third is urgent, takes 50 ms and goes to the "
        "front of the queue; the others are low priority and take 1 s. No slot is reserved.",
        explanation="The 12 low-priority jobs bring 12 s of work in 3 s to 2 slots, so both slots are nearly always "
        "held by a job with up to a second left, and low-priority jobs pile up held back by the rate limiter. An "
        "urgent job at the front of the queue still needs a free slot, and RQ lets held-back jobs in oldest "
        "first, so it waits behind every low-priority job that arrived before it: the last urgent job waits "
        "for about 12 ÷ 2 = 6 s of low work less the 3 s it arrived after, roughly 3 s, for 50 ms of its own. "
        "Priority in a queue orders the waiting, not the workers. Reserve a slot and the urgent jobs never wait "
        "for a long one; the low-priority jobs get 1 slot instead of 2, so they finish at half the rate.",
        section="internal-architecture",
        anchor="priority-queues-and-starvation",
        params={
            "workflow": "priority",
            "jobs": 18,
            "arrival_per_s": 6.0,
            "duration_ms": 1000,
            "duration_spread_ms": 0,
            "urgent_every": 3,
            "urgent_ms": 50,
            "concurrency": 2,
            "reserved": 0,
            "max_retries": 0,
            "slo_seconds": 1.0,
        },
        drill="priority-and-tenant-fairness",
    ),
    Preset(
        name="priority-reserved",
        title="Priority with a reserved slot",
        setup="The same 18 jobs at 6 a second on 2 worker slots, every third urgent (50 ms), the rest low priority "
        "(1 s); 1 slot is reserved for urgent jobs.",
        explanation="Low-priority jobs carry a second rate-limit key with 2 − 1 = 1 slot, so they queue behind each "
        "other and never take the reserved one; urgent jobs keep the visitor's key, whose 1 slot is then theirs. "
        "An urgent job waits only for another urgent job (50 ms each, one arriving every half second): its p95 "
        "is its own work plus RQ's pickup. The price is paid by the low-priority jobs: 12 s of work on one slot "
        "takes about 12 s, where two slots took about 6, so their throughput halves, and the reserved slot idles "
        "most of the time. Both keys together still hold only the visitor's fair share.",
        section="internal-architecture",
        anchor="priority-queues-and-starvation",
        params={
            "workflow": "priority",
            "jobs": 18,
            "arrival_per_s": 6.0,
            "duration_ms": 1000,
            "duration_spread_ms": 0,
            "urgent_every": 3,
            "urgent_ms": 50,
            "concurrency": 2,
            "reserved": 1,
            "max_retries": 0,
            "slo_seconds": 1.0,
        },
        drill="priority-and-tenant-fairness",
    ),
]

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in [
        Preset(
            name="happy",
            title="Happy path",
            setup="A batch of charges arrives at once; nothing fails; each takes about 200 ms on the shared workers.",
            explanation="With no faults every job succeeds on its first attempt, so the time to drain is just the "
            "work divided among the worker slots: jobs × duration ÷ slots, plus the spread of the durations. "
            "Latency sits near the job's own duration plus its wait in the queue. This is the baseline the other "
            "presets are compared with.",
            section="core-concepts",
            anchor="producers-brokers-and-consumers",
            params={"jobs": 20},
        ),
        Preset(
            name="flaky",
            title="Flaky dependency",
            setup="30 charges; each attempt fails with probability 0.4, independently, as a provider's odd 503 "
            "would; up to 4 retries with exponential backoff and full jitter.",
            explanation="A job lands in the DLQ only if all 5 of its attempts fail: 0.4^5 ≈ 1%, so usually none of "
            "30 does. Retries are 30 × (0.4 + 0.4² + 0.4³ + 0.4⁴) ≈ 20, spread over the run, and latency is "
            "stretched by the waits. Independent failures do not bunch up, so even jitter none spreads these "
            "retries: jitter matters when one outage fails everyone at once (the retry-storm preset).",
            section="scalability-and-reliability",
            anchor="exponential-backoff-and-jitter",
            params={"jobs": 30, "failure_rate": 0.4, "max_retries": 4, "backoff_base_s": 1, "backoff_cap_s": 16},
        ),
        Preset(
            name="retry-storm",
            title="Retry storm after an outage",
            setup="A burst of charges arrives together while the payment provider is down for the first 7 s; "
            "retries wait 5 s, then 10 s (the cap), without jitter, up to 4 times.",
            explanation="Every first attempt fails inside the outage within about a second. With jitter none every "
            "failed job waits exactly the same 5 s, so the retries fall due together and fail together again (the "
            "provider is still down); 10 s later they come back together once more and succeed. Expect two spikes "
            "of retries due in one second, at about +5 s and +15 s, nothing between them, and an empty DLQ. A "
            "spike is as tall as the failures were close together: when the first wave takes longer than a second "
            "(a loaded worker pool), it spills into the next second and the spike splits over two bars, and a "
            "job whose first attempt started late may retry after the outage and succeed a wave early. Full "
            "jitter spreads the same retries over the whole window instead.",
            section="scalability-and-reliability",
            anchor="exponential-backoff-and-jitter",
            params={
                "jobs": 40,
                "outage_s": 7.0,
                "max_retries": 4,
                "backoff": "exponential",
                "backoff_base_s": 5,
                "backoff_cap_s": 10,
                "jitter": "none",
                "duration_ms": 20,
                "duration_spread_ms": 0,
            },
        ),
        Preset(
            name="poison",
            title="Poison messages",
            setup="Every message is malformed, so every attempt fails the same way; RQ retries each up to 3 times "
            "on a jittered backoff schedule.",
            explanation="Each job is tried 1 + 3 = 4 times and then lands in the dead-letter queue: all of them. "
            "Retrying cannot fix a poison message; the retries only add load and delay. The DLQ is where a human "
            "looks: fix the consumer, then redrive, and the parked messages go through. Redrive before the fix "
            "and they bounce straight back.",
            section="scalability-and-reliability",
            anchor="dlq-arithmetic",
            params={
                "jobs": 12,
                "poison_rate": 1.0,
                "max_retries": 3,
                "backoff_base_s": 2,
                "backoff_cap_s": 30,
                "duration_ms": 100,
                "duration_spread_ms": 50,
            },
        ),
        Preset(
            name="timeout",
            title="Timeouts",
            setup="Each job needs 3 s of work but the job timeout is 1 s; 1 retry after a fixed 1 s wait.",
            explanation="RQ's death penalty raises JobTimeoutException in the work-horse after 1 s. Timeouts follow "
            "the normal retry path: each job is tried twice, times out twice and is dead-lettered. A timeout "
            "shorter than the work means retries only add load: every attempt holds a worker for the whole "
            "timeout and then throws the work away.",
            section="scalability-and-reliability",
            anchor="timeouts-and-deadline-propagation",
            params={
                "jobs": 6,
                "duration_ms": 3000,
                "duration_spread_ms": 0,
                "timeout_s": 1,
                "max_retries": 1,
                "backoff": "fixed",
                "backoff_base_s": 1,
            },
        ),
        Preset(
            name="crash",
            title="Crashing work-horse",
            setup="Half the attempts SIGKILL their own work-horse mid-job, as an out-of-memory kill would; up to 3 "
            "retries; the charge is idempotent.",
            explanation="The worker notices at once ('waitpid returned 9') and the job follows the retry path. A "
            "job is dead-lettered only when all 4 of its attempts crash (0.5^4 ≈ 6%), so nearly every job "
            "succeeds. Nothing is charged twice: the charge is idempotent, so an attempt killed after writing it "
            "finds the key on its retry. You can also press 'Crash its worker' on a running job.",
            section="internal-architecture",
            anchor="when-a-consumer-dies-during-a-job",
            params={
                "jobs": 8,
                "crash_rate": 0.5,
                "duration_ms": 1500,
                "duration_spread_ms": 500,
                "max_retries": 3,
                "backoff_base_s": 1,
                "backoff_cap_s": 4,
            },
        ),
        Preset(
            name="duplicates",
            title="Duplicate delivery",
            setup="Half the messages are delivered twice (the same job id pushed again, as an at-least-once broker "
            "does after a lost ack); the consumer checks an idempotency key.",
            explanation="With idempotency on, the second delivery finds the idempotency key and is suppressed: no "
            "double charges, however many duplicates arrive. At-least-once delivery plus an idempotent consumer "
            "is what people mean by 'exactly once' in practice. Turn idempotency off and every duplicate is a "
            "second charge.",
            section="data-and-request-flow",
            anchor="where-idempotency-lives",
            params={"jobs": 30, "duplicate_rate": 0.5, "duration_ms": 100, "duration_spread_ms": 50},
        ),
        Preset(
            name="spike",
            title="Traffic spike",
            setup="A burst of 200 charges arrives at once, but the queue admits at most 50 in flight.",
            explanation="Admission control sheds what does not fit: rejected = requested − cap, immediately, with a "
            "clear 'rejected' outcome, instead of building an unbounded backlog. Nothing is silently lost: the "
            "accounting adds up to what was requested.",
            section="scalability-and-reliability",
            anchor="bounded-queues-and-load-shedding",
            params={"jobs": 200, "queue_cap": 50, "duration_ms": 100, "duration_spread_ms": 50},
        ),
        Preset(
            name="visibility-timeout",
            title="Visibility timeout shorter than the job",
            setup="Stream model: charges arrive one at a time (each done before the next comes), each taking 1.5 s, "
            "on a consumer group whose visibility timeout is 1 s; idempotency on.",
            explanation="At 1 s the message is still unacknowledged, so XAUTOCLAIM hands it to a second consumer "
            "while the first still works: exactly one duplicate delivery per message, each started while the "
            "first delivery runs. With idempotency on both charge attempts meet the same key: no double charges. "
            "Turn lease extension on (the consumer re-claims its message every second) and the duplicates go; "
            "turn idempotency off instead and count the double charges.",
            section="core-concepts",
            anchor="leases-and-acknowledgements",
            params={
                "model": "stream",
                "jobs": 4,
                "arrival_per_s": 0.25,
                "duration_ms": 1500,
                "duration_spread_ms": 0,
                "visibility_timeout_s": 1.0,
                "timeout_s": 10,
            },
        ),
        Preset(
            name="ordering",
            title="Per-customer order under retries",
            setup="Events for a few customers (event k belongs to customer k mod 4) arrive quickly on RQ; 30% of "
            "attempts fail and are retried after a fixed 1 s.",
            explanation="On RQ a failed event waits for its retry while the customer's next event succeeds, so "
            "events apply out of order: each failure that is overtaken is a violation. Run the same seed on the "
            "log model with retries in place: each customer's events sit in one partition and a failure holds "
            "the partition, so violations are 0, paid for with the stall.",
            section="internal-architecture",
            anchor="partitions-and-ordering",
            params={
                "jobs": 40,
                "arrival_per_s": 20.0,
                "failure_rate": 0.3,
                "max_retries": 5,
                "backoff": "fixed",
                "backoff_base_s": 1,
                "duration_ms": 100,
                "duration_spread_ms": 50,
                "on_failure": "block",
                "order_keys": 4,
            },
        ),
        Preset(
            name="head-of-line",
            title="Poison message blocks its partition",
            setup="Log model, four partitions, a failed message retried in place; 5% of messages are poison, "
            "retried with backoff doubling from 1 s up to 8 s before the DLQ.",
            explanation="A poison message at the head of a partition is retried with backoff (1 + 2 + 4 + 8 s) "
            "before it is dead-lettered, and every message behind it in that partition waits: its lag climbs "
            "while the other partitions drain. Switch 'a failed message' to the retry topic: the poison message "
            "is parked and its partition moves on at once.",
            section="internal-architecture",
            anchor="partitions-and-ordering",
            params={
                "model": "log",
                "jobs": 40,
                "arrival_per_s": 10.0,
                "poison_rate": 0.05,
                "max_retries": 4,
                "backoff": "exponential",
                "backoff_base_s": 1,
                "backoff_cap_s": 8,
                "jitter": "none",
                "duration_ms": 50,
                "duration_spread_ms": 0,
                "on_failure": "block",
                "order_keys": 8,
            },
        ),
        Preset(
            name="rebalance",
            title="A log consumer dies: rebalance",
            setup="Log model, four partitions shared by the live consumers; 4 s in, the consumer that owns the next "
            "message is killed (SIGKILL); a partition's lease lasts 3 s.",
            explanation="The dead consumer's partitions are stuck until its lease runs out, then move to the "
            "survivors; their lag spikes and drains, and the message it was working on is delivered again from the "
            "last committed offset (idempotency keeps the charge single). When the pool restarts it, partitions "
            "move back: a second rebalance.",
            section="broker-internals",
            anchor="consumer-group-rebalancing-and-its-cost",
            params={
                "model": "log",
                "jobs": 100,
                "arrival_per_s": 10.0,
                "duration_ms": 200,
                "duration_spread_ms": 50,
                "kill_consumer_at_s": 4.0,
            },
        ),
        Preset(
            name="slow-consumer",
            title="Slow consumer",
            setup="10 jobs arrive per second for 6 s; 2 workers take 400 ms per job; the SLO is p95 ≤ 3 s.",
            explanation="Two workers at 400 ms each serve 5 jobs a second, so the queue grows by about 5 a second "
            "while arrivals last: Little's law (L = λW) and the arrival excess predict the peak depth, and "
            "draining it takes jobs × 0.4 s ÷ 2 workers. Latency grows with the queue and blows through the SLO.",
            section="scalability-and-reliability",
            anchor="utilisation-and-queueing-delay",
            params={
                "jobs": 60,
                "arrival_per_s": 10.0,
                "duration_ms": 400,
                "duration_spread_ms": 0,
                "concurrency": 2,
                "slo_seconds": 3.0,
            },
        ),
        *WORKFLOW_PRESETS,
    ]
}
