"""Named Lab experiments. The names are a contract: Study and Drills link to them."""

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
}


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    expect: str
    section: str  # the Study section that explains it
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
        "dual-write",
        "Dual write: save, then publish",
        "Each request saves an order and publishes 'order placed' to the broker itself, after its COMMIT "
        "(Django's on_commit). Some requests die right after the COMMIT; some transactions roll back. Count "
        "the orders nobody hears about. Then set 'publish' to inside the transaction and run the same seed: "
        "the same faults now leave events about orders that do not exist.",
        "data-and-request-flow",
        {**_ORDERS, "workflow": "dual_write"},
        drill="transactional-outbox",
    ),
    Preset(
        "outbox",
        "Transactional outbox with a relay",
        "The same requests and the same faults, but the event is a row written in the order's own "
        "transaction; a relay (a real RQ job polling with FOR UPDATE SKIP LOCKED, a lease on SQLite) publishes "
        "it and marks it sent, and sometimes dies between the two. Compare lost and ghost events with the dual "
        "write, count the duplicates, and check the idempotent consumer's double effects.",
        "data-and-request-flow",
        {**_ORDERS, "workflow": "outbox"},
        drill="transactional-outbox",
    ),
    Preset(
        "saga",
        "Saga: reserve, charge, ship — or undo",
        "Each order is a saga of three steps (reserve stock, charge, ship) run by an orchestrator job that keeps "
        "its state in the database. A step sometimes fails for good: the steps already done are compensated, "
        "newest first. A compensation sometimes fails too (a 503): the job retries with backoff and resumes "
        "where it stopped. Predict how many sagas complete, how many are undone, and how many end in the DLQ "
        "needing a human; none may be left half-done.",
        "workflows",
        {
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
        "fan-in",
        "Fan-out, fan-in: close the batch once",
        "Each message is a batch that fans out child jobs; a final step must run once per batch, after every "
        "child. Children fail and retry, and some are delivered twice. With the naive design each child adds one "
        "to a counter and the one that sees the batch size runs the final: count the early and repeated finals. "
        "Switch 'close the batch' to atomic: a child is counted once, and one compare-and-set closes the batch.",
        "workflows",
        {
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
]

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in [
        Preset(
            "happy",
            "Happy path",
            "Twenty charges, no faults. Every job succeeds on its first attempt, the queue drains in a few "
            "seconds and latency sits near the job's own duration. This is the baseline the other presets "
            "are compared with.",
            "core-concepts",
            {"jobs": 20},
        ),
        Preset(
            "flaky",
            "Flaky dependency",
            "Each attempt fails with probability 0.4, independently, as a payment provider returning the odd "
            "503 would. With 4 retries and exponential backoff with full jitter, expect about 0.4^5 ≈ 1% of "
            "jobs in the DLQ (usually none of 30), about 20 retries spread over the run, and latency stretched "
            "by the waits. Independent failures do not bunch up, so even jitter none spreads these retries: "
            "jitter matters when one outage fails everyone at once (the retry-storm preset).",
            "scalability-and-reliability",
            {"jobs": 30, "failure_rate": 0.4, "max_retries": 4, "backoff_base_s": 1, "backoff_cap_s": 16},
        ),
        Preset(
            "retry-storm",
            "Retry storm after an outage",
            "The payment provider is down for the first 7 s, and 40 charges arrive at once. Every first "
            "attempt fails within about a second. With jitter none, all 40 retries fall due together 5 s later "
            "and fail together again (the provider is still down); 10 s after that they come back together "
            "once more and succeed. The retry chart shows two spikes of about 40 retries due in one second (at "
            "times split over two bars), at about +5 s and +15 s, and nothing in between. Run the same seed with "
            "jitter full: the same failures come back spread over about 15 seconds, with about a third as many "
            "in the busiest second. Full jitter waits less on average, so more attempts land inside the outage "
            "(about 95 retries instead of 80); with 4 retries the DLQ still stays (nearly) empty.",
            "scalability-and-reliability",
            {
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
            "poison",
            "Poison messages",
            "Every message is malformed, so every attempt fails the same way. Each job is tried 1 + 3 times "
            "on a jittered schedule and then lands in the dead-letter queue. Retrying cannot fix a poison "
            "message: the DLQ is where a human looks. Redrive them to see the retry budget restored.",
            "scalability-and-reliability",
            {
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
            "timeout",
            "Timeouts",
            "Jobs take 3 s but the job timeout is 1 s, so RQ's death penalty raises JobTimeoutException in "
            "the work-horse. Timeouts follow the normal retry path: each job is tried twice and then "
            "dead-lettered. A timeout shorter than the work means retries only add load.",
            "scalability-and-reliability",
            {
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
            "crash",
            "Crashing work-horse",
            "Half the attempts SIGKILL their own work-horse mid-job, as an out-of-memory kill would. The "
            "worker notices at once ('waitpid returned 9') and the job follows the retry path. You can also "
            "press 'crash its worker' on a running job. Nothing is charged twice: the charge is idempotent.",
            "core-concepts",
            {
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
            "duplicates",
            "Duplicate delivery",
            "Half the messages are delivered twice — the same job id pushed onto the queue again, as an "
            "at-least-once broker does after a lost ack. With idempotency on, the second delivery finds the "
            "idempotency key and is suppressed: 0 double charges. Turn idempotency off and count them.",
            "data-and-request-flow",
            {"jobs": 30, "duplicate_rate": 0.5, "duration_ms": 100, "duration_spread_ms": 50},
        ),
        Preset(
            "spike",
            "Traffic spike",
            "A burst of 200 charges arrives at once but the queue admits at most 50 in flight. The other "
            "150 are shed immediately with a clear 'rejected' outcome instead of building an unbounded "
            "backlog: rejected = requested − cap. Nothing is silently lost.",
            "scalability-and-reliability",
            {"jobs": 200, "queue_cap": 50, "duration_ms": 100, "duration_spread_ms": 50},
        ),
        Preset(
            "visibility-timeout",
            "Visibility timeout shorter than the job",
            "Stream model: four charges, one every four seconds, each taking 1.5 s, on a consumer group whose "
            "visibility timeout is 1 s. At 1 s the message is still unacknowledged, so XAUTOCLAIM hands it to a "
            "second consumer while the first still works: expect exactly one duplicate delivery per message "
            "(4), each started while the first delivery runs. With idempotency on both charge attempts meet the "
            "same key: 0 double charges. Turn lease extension on (the consumer re-claims its message every "
            "second) and the duplicates go to 0; turn idempotency off instead and count the double charges.",
            "core-concepts",
            {
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
            "ordering",
            "Per-customer order under retries",
            "Forty events for four customers (event k belongs to customer k mod 4), a flaky provider (30% of "
            "attempts fail) and retries. On RQ a failed event waits for its retry while the customer's next "
            "event succeeds, so events apply out of order: count the order violations. Run the same seed on the "
            "log model with retries in place: each customer's events sit in one partition and a failure holds "
            "the partition, so violations are 0, paid for with the stall.",
            "internal-architecture",
            {
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
            "head-of-line",
            "Poison message blocks its partition",
            "Log model, four partitions, retries in place. A poison message at the head of a partition is "
            "retried with backoff (1 + 2 + 4 + 8 s) before it is dead-lettered, and every message behind it in "
            "that partition waits: its lag climbs while the other partitions drain. Switch 'a failed message' to "
            "the retry topic: the poison message is parked and its partition moves on at once.",
            "broker-internals",
            {
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
            "rebalance",
            "A log consumer dies: rebalance",
            "Log model, four partitions shared by the live consumers. Four seconds in, the consumer that owns "
            "the next message is killed (SIGKILL). Its partitions are stuck until its 3 s lease runs out, then "
            "move to the survivors; their lag spikes and drains, and the message it was working on is delivered "
            "again from the last committed offset (idempotency keeps the charge single). When the pool "
            "restarts it, partitions move back: a second rebalance.",
            "broker-internals",
            {
                "model": "log",
                "jobs": 100,
                "arrival_per_s": 10.0,
                "duration_ms": 200,
                "duration_spread_ms": 50,
                "kill_consumer_at_s": 4.0,
            },
        ),
        Preset(
            "slow-consumer",
            "Slow consumer",
            "Ten jobs arrive per second but two workers at 400 ms each serve only five per second, so the "
            "queue grows by about five a second while arrivals last. Little's law (L = λW) predicts the "
            "depth; compare it with the observed peak and watch latency blow through the SLO.",
            "scalability-and-reliability",
            {
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
