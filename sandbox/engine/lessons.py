"""What each preset teaches around its run, keyed by preset name: the answers its predictions come to
(kept off its card), the lesson card's headline, figures and chart, the one-knob variant to try next and
the "why?" question. A preset without an entry gets DEFAULT (a plain card with no Try next)."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TryNext:
    """The one-knob variant a result suggests next: the same seed with one parameter changed."""

    label: str  # what the button says after "Try next: "
    params: dict  # the knob, as parameter overrides
    look_for: str  # what to watch in the variant


@dataclass(frozen=True)
class Why:
    """One "why?" question after the run, with three options (Brilliant's pattern), before the explanation."""

    question: str
    options: tuple[str, str, str]
    answer: int  # index of the right option


@dataclass(frozen=True, kw_only=True)
class Lesson:
    # What the preset's predictions (sandbox.liveview.predictions keys) come to on a typical run.
    answers: dict = field(default_factory=dict)
    headline: str = ""  # the lesson in one sentence, formatted with the run's first-pass figures
    counters: tuple[str, ...] = ("succeeded", "dead_lettered", "attempts")  # the 3–4 figures it is about
    chart: str = "lanes"  # the one chart that shows it: depth, throughput, retries, lanes or lag
    try_next: TryNext | None = None
    why: Why | None = None


DEFAULT = Lesson()


def lesson_for(preset: str) -> Lesson:
    return LESSONS.get(preset, DEFAULT)


LESSONS: dict[str, Lesson] = {
    "happy": Lesson(
        answers={"drain_s": 2},
        headline="All {succeeded} jobs succeeded first time; the queue drained in {drain_s} s.",
        counters=("succeeded", "attempts", "dead_lettered"),
        chart="depth",
        try_next=TryNext(
            "a flaky dependency (30% of attempts fail)",
            {"failure_rate": 0.3},
            "how many retries it takes, and how much longer the queue takes to drain",
        ),
        why=Why(
            "Why did the queue take about that long to drain?",
            (
                "The work was shared by the worker slots: jobs × duration ÷ slots",
                "Each job waited for the one before it to be acknowledged",
                "RQ adds a fixed delay of a second per job",
            ),
            0,
        ),
    ),
    "flaky": Lesson(
        answers={"dead_lettered": 0, "retries": 20},
        headline=(
            "{retries} retries rescued all but {dead_lettered} of {enqueued} jobs: independent failures "
            "rarely fail one job five times."
        ),
        counters=("retries", "succeeded", "dead_lettered"),
        chart="retries",
        try_next=TryNext(
            "only 1 retry", {"max_retries": 1}, "the DLQ: with 2 attempts a job is dead-lettered 0.4² = 16% of the time"
        ),
        why=Why(
            "Why did so few jobs (if any) end in the DLQ?",
            (
                ("A job is dead-lettered only if every one of its attempts fails, and 0.4^5 is about 1%"),
                "Full jitter prevents failures",
                "The provider recovered after the first wave of failures",
            ),
            0,
        ),
    ),
    "retry-storm": Lesson(
        answers={"retry_peak": 40, "dead_lettered": 0},
        headline=(
            "Without jitter, up to {retry_peak} retries fell due in the same second: the outage's "
            "failures came back as waves."
        ),
        counters=("retries", "succeeded", "dead_lettered"),
        chart="retries",
        try_next=TryNext(
            "full jitter",
            {"jitter": "full"},
            ("the retry chart: the same failures come back spread out, a fraction as many in the busiest second"),
        ),
        why=Why(
            "Why did the retries come back as spikes?",
            (
                "Every job failed at about the same moment and waited exactly the same backoff",
                "RQ's scheduler only runs every 5 seconds",
                "The provider sends its errors in batches",
            ),
            0,
        ),
    ),
    "poison": Lesson(
        answers={"dead_lettered": 12, "attempts_per_job": 4},
        headline=(
            "All {dead_lettered} of {enqueued} jobs ended in the DLQ after {attempts_per_job} attempts "
            "each: retries cannot fix a malformed message."
        ),
        counters=("dead_lettered", "attempts", "retries", "succeeded"),
        chart="lanes",
        try_next=TryNext(
            "no retries", {"max_retries": 0}, "the same DLQ, reached at once, with a quarter of the attempts"
        ),
        why=Why(
            "Why did the retries not help?",
            (
                "The failure is in the message itself, so every attempt fails the same way",
                "The backoff was too short for the provider to recover",
                "The workers crashed before the retries ran",
            ),
            0,
        ),
    ),
    "timeout": Lesson(
        answers={"dead_lettered": 6, "drain_s": 7},
        headline=(
            "All {dead_lettered} jobs timed out on every attempt and ended in the DLQ, after {drain_s} s "
            "of wasted work."
        ),
        counters=("timeouts", "dead_lettered", "attempts"),
        chart="lanes",
        try_next=TryNext(
            "a 5 s timeout", {"timeout_s": 5}, "every job succeeding on its first attempt, and the DLQ staying empty"
        ),
        why=Why(
            "Why did every attempt fail?",
            (
                "The work takes longer than the timeout, so the work-horse is always cut off",
                "The jobs were poison messages",
                "The retry came too soon",
            ),
            0,
        ),
    ),
    "crash": Lesson(
        answers={"double_charges": 0, "succeeded": 8},
        headline=(
            "{crashes} work-horses died mid-job, yet {succeeded} of {enqueued} jobs succeeded and "
            "{double_charges} were charged twice."
        ),
        counters=("crashes", "succeeded", "double_charges", "dead_lettered"),
        chart="lanes",
        try_next=TryNext(
            "idempotency off",
            {"idempotency": "off"},
            "double charges: a retry after a crash that came after the charge charges again",
        ),
        why=Why(
            "Why was no customer charged twice?",
            (
                "The retry found the charge's idempotency key and did not charge again",
                "A crashed attempt never writes anything",
                "RQ rolls back a crashed job's writes",
            ),
            0,
        ),
    ),
    "duplicates": Lesson(
        answers={"double_charges": 0},
        headline=(
            "{duplicates_delivered} messages arrived twice and {duplicates_suppressed} were suppressed: "
            "{double_charges} double charges."
        ),
        counters=("duplicates_delivered", "duplicates_suppressed", "double_charges"),
        chart="lanes",
        try_next=TryNext("idempotency off", {"idempotency": "off"}, "every duplicate delivery becoming a charge"),
        why=Why(
            "Why did the duplicates not charge anyone twice?",
            (
                ("The consumer recorded each charge under its idempotency key, so the second delivery was a no-op"),
                "RQ refuses to run the same job id twice",
                "The broker removed the duplicates before delivery",
            ),
            0,
        ),
    ),
    "spike": Lesson(
        answers={"rejected": 150},
        headline=(
            "{rejected} of {requested} charges were turned away at the door; the {enqueued} admitted all finished."
        ),
        counters=("rejected", "enqueued", "succeeded"),
        chart="depth",
        try_next=TryNext("room for all of them", {"queue_cap": 200}, "no rejections, and a longer drain"),
        why=Why(
            "Why were charges rejected at once rather than queued?",
            (
                "The queue admits only up to its cap; the rest are shed at admission",
                "The workers were too slow",
                "Redis ran out of memory",
            ),
            0,
        ),
    ),
    "visibility-timeout": Lesson(
        answers={"duplicates_delivered": 4, "double_charges": 0},
        headline=(
            "Each message was handed to a second consumer while the first still worked: "
            "{duplicates_delivered} duplicate deliveries, {double_charges} double charges."
        ),
        counters=("duplicates_delivered", "duplicates_suppressed", "double_charges"),
        chart="lanes",
        try_next=TryNext("lease extension on", {"lease_extension": "on"}, "the duplicate deliveries disappearing"),
        why=Why(
            "Why was each message delivered twice?",
            (
                ("It was still unacknowledged when its visibility timeout ran out, so it was claimed again"),
                "The producer published every message twice",
                "The first consumer crashed",
            ),
            0,
        ),
    ),
    "ordering": Lesson(
        answers={"order_violations": 12},
        headline=(
            "{order_violations} events were applied after a later event of the same customer: retries on "
            "a shared queue reorder."
        ),
        counters=("order_violations", "retries", "succeeded"),
        chart="lanes",
        try_next=TryNext(
            "the log model", {"model": "log"}, "order violations at 0, and partitions stalling behind each failure"
        ),
        why=Why(
            "Why did events apply out of order?",
            (
                "A failed event waited for its retry while the same customer's next event went ahead",
                "RQ pops jobs in random order",
                "The workers' clocks disagree",
            ),
            0,
        ),
    ),
    "head-of-line": Lesson(
        answers={"max_lag": 10, "dead_lettered": 2},
        headline=(
            "A poison message held its partition while it was retried: that partition fell {max_lag} "
            "messages behind; {dead_lettered} went to the DLQ."
        ),
        counters=("max_lag", "dead_lettered", "retries"),
        chart="lag",
        try_next=TryNext(
            "the retry topic",
            {"on_failure": "retry_topic"},
            "the blocked partition's lag: the poison message is parked and its partition moves on",
        ),
        why=Why(
            "Why did one partition fall behind while the others drained?",
            (
                "Its head message was retried in place, and everything behind it waited",
                "That partition had more messages",
                "Its consumer was slower",
            ),
            0,
        ),
    ),
    "rebalance": Lesson(
        answers={"max_lag": 30, "double_charges": 0},
        headline=(
            "A consumer died and its partitions moved: the worst partition fell {max_lag} messages "
            "behind, {redeliveries} messages were delivered again, {double_charges} double charges."
        ),
        counters=("max_lag", "redeliveries", "double_charges"),
        chart="lag",
        try_next=TryNext("idempotency off", {"idempotency": "off"}, "the redelivered message charging twice"),
        why=Why(
            "Why was a message delivered again after the kill?",
            (
                ("The new owner resumed from the last committed offset, before the dead consumer's message"),
                "The producer retried the publish",
                "The kill corrupted the partition",
            ),
            0,
        ),
    ),
    "slow-consumer": Lesson(
        answers={"peak_depth": 30, "drain_s": 12},
        headline=("Arrivals outran the workers: the queue peaked at {peak_depth} jobs and took {drain_s} s to drain."),
        counters=("succeeded", "dead_lettered", "attempts"),
        chart="depth",
        try_next=TryNext("4 workers", {"concurrency": 4}, "the queue staying near empty and the SLO met"),
        why=Why(
            "Why did the queue keep growing while jobs arrived?",
            (
                "Jobs arrived faster than the workers could serve them",
                "Each job was retried",
                "The queue cap was too low",
            ),
            0,
        ),
    ),
    "dual-write": Lesson(
        answers={"lost": 4, "ghosts": 0},
        headline="{lost} orders were saved and never announced: each died between its COMMIT and its publish.",
        counters=("lost", "ghosts", "dead_lettered"),
        try_next=TryNext(
            "publish inside the transaction",
            {"publish_at": "in_transaction"},
            "the lost events turning into ghosts: events about orders that rolled back",
        ),
        why=Why(
            "Why were orders saved but never announced?",
            (
                "The process died after the COMMIT and before the publish: two writes, no shared transaction",
                "The broker dropped the messages",
                "The consumer was not idempotent",
            ),
            0,
        ),
    ),
    "outbox": Lesson(
        answers={"lost": 0, "duplicates": 30, "double_effects": 0},
        headline="No event was lost; {duplicates} were published twice, and the idempotent consumer acted on "
        "{double_effects} twice.",
        counters=("lost", "ghosts", "duplicates", "double_effects"),
        try_next=TryNext(
            "idempotency off",
            {"idempotency": "off"},
            "the relay's duplicates turning into double effects",
        ),
        why=Why(
            "Why were some events published twice?",
            (
                "The relay died after publishing and before marking the rows sent, so it published them again",
                "Each order was written twice",
                "The broker redelivers every event once",
            ),
            0,
        ),
    ),
    "saga": Lesson(
        answers={"compensated": 8, "needs_human": 1},
        headline="{completed} sagas completed, {compensated} were undone in reverse order, {needs_human} wait for "
        "a human, and {half_done} were left half-done.",
        counters=("completed", "compensated", "needs_human", "half_done"),
        try_next=TryNext(
            "compensations that never fail",
            {"compensation_fail_rate": 0},
            "every failed saga compensated, and nothing left for a human",
        ),
        why=Why(
            "Why did no saga end half-done, even when a compensation failed?",
            (
                "A failed compensation is retried from the saved state; one that never succeeds parks in the DLQ",
                "The steps run in one database transaction",
                "Failed steps are simply skipped",
            ),
            0,
        ),
    ),
    "fan-in": Lesson(
        answers={"final_runs": 18, "early_finals": 4},
        headline="{batches} batches ran their final step {final_runs} times; {early_finals} ran before every child "
        "was done.",
        counters=("batches", "final_runs", "early_finals"),
        try_next=TryNext(
            "atomic closing",
            {"fan_in": "atomic"},
            "exactly one final per batch, after its last child",
        ),
        why=Why(
            "Why did some batches run their final step early, or more than once?",
            (
                "A child delivered twice counted twice, so the counter reached the batch size too soon and again",
                "The final step was retried after a failure",
                "RQ ran the children in the wrong order",
            ),
            0,
        ),
    ),
    "pipeline": Lesson(
        answers={"max_depth_stage2": 5, "max_depth_stage3": 21, "max_age_ms_stage3": 8000},
        headline="The backlog built before stage {backlog_stage}: {max_depth_stage3} items deep, the oldest waiting "
        "{max_age_ms_stage3} ms, while stage 2's queue peaked at {max_depth_stage2} and the front shed {shed}.",
        counters=("max_depth_stage2", "max_depth_stage3", "max_age_ms_stage3", "shed"),
        try_next=TryNext(
            "bounded queues (5 each)",
            {"stage_bound": 5},
            "stage 3's queue stopping at 5, stage 2's filling behind it, and the front shedding: pressure "
            "travelling back, with the oldest item's age capped",
        ),
        why=Why(
            "Why did the backlog build where it did, and not at the front?",
            (
                "Only the queue right before the slow stage receives more than its consumer takes; an unbounded "
                "queue says nothing to the stages before it",
                "Stage 2 slowed down too",
                "RQ's scheduler holds items between stages",
            ),
            0,
        ),
    ),
    "priority-inversion": Lesson(
        answers={"urgent_p95_ms": 3000, "low_throughput": 120},
        headline="Urgent jobs waited up to {urgent_max_ms} ms (p95 {urgent_p95_ms} ms) for 50 ms of work; "
        "low-priority jobs ran at {low_throughput} a minute.",
        counters=("urgent_p95_ms", "urgent_max_ms", "low_throughput"),
        try_next=TryNext(
            "one reserved slot",
            {"reserved": 1},
            "urgent p95 falling to about its own work, and the low-priority throughput halving",
        ),
        why=Why(
            "Why did urgent jobs wait although they went to the front of the queue?",
            (
                "Every slot was held by a long job, and RQ's rate limiter lets held-back jobs in oldest first",
                "RQ ignores at_front",
                "Urgent jobs were retried",
            ),
            0,
        ),
    ),
    "priority-reserved": Lesson(
        answers={"urgent_p95_ms": 300, "low_throughput": 60},
        headline="With a slot reserved, urgent p95 was {urgent_p95_ms} ms; low-priority jobs ran at "
        "{low_throughput} a minute on what was left.",
        counters=("urgent_p95_ms", "urgent_max_ms", "low_throughput"),
        try_next=TryNext(
            "no reservation",
            {"reserved": 0},
            "urgent jobs queueing behind the long ones again, and the low-priority jobs finishing sooner",
        ),
        why=Why(
            "Why did the low-priority jobs finish more slowly than without the reservation?",
            (
                "They may use only the share less the reserved slot, which idles when no urgent job is waiting",
                "Urgent jobs preempted them",
                "The reservation added a worker",
            ),
            0,
        ),
    ),
}
