"""Pins the factual corrections from issue #14 in the queueing content.

Each test reads the Markdown from disk (no database) and checks a short, distinctive phrase or
number of the corrected claim, plus the absence of the wrong wording it replaced. Rewording for
style should keep these passing; undoing a correction should not.
"""

import ast
import re
from functools import cache
from pathlib import Path

import pytest

CONTENT = Path(__file__).resolve().parents[2] / "topics" / "content" / "queueing"


@cache
def text(relative: str) -> str:
    """A content file, case-folded with runs of whitespace collapsed, so line wrapping is irrelevant."""
    return re.sub(r"\s+", " ", (CONTENT / relative).read_text()).casefold()


def has(relative: str, *phrases: str) -> None:
    body = text(relative)
    for phrase in phrases:
        assert phrase.casefold() in body, f"{relative} lost the corrected wording {phrase!r}"


def lacks(relative: str, *phrases: str) -> None:
    body = text(relative)
    for phrase in phrases:
        assert phrase.casefold() not in body, f"{relative} still has the wrong wording {phrase!r}"


CORE = "sections/02-core-concepts.md"
ARCH = "sections/03-internal-architecture.md"
FLOW = "sections/04-data-and-request-flow.md"
RELIABILITY = "sections/05-scalability-and-reliability.md"
CODE = "sections/06-code-examples.md"
INTERVIEW = "sections/07-common-interview-questions.md"
TRADEOFFS = "sections/09-tradeoffs.md"


def python_blocks(relative: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (CONTENT / relative).read_text(), re.S)


# 1. Idempotency-key status codes agree across sections 02, 04 and 06.
def test_409_means_in_progress_not_done():
    has(CORE, "an earlier request with the same key is still in progress", "never count it as done")
    lacks(CORE, "treat as done", "| often success |")
    has(FLOW, "409 conflict", "still running, ask again later")
    has(CODE, "in_flight_or_busy = {409, 429}", "409 is transient")


def test_422_for_a_reused_key_with_a_different_payload_is_permanent():
    has(CORE, "http 422 for a reused idempotency key with a different payload | permanent")
    has(FLOW, "422 unprocessable content", "that is a permanent error")
    has(CODE, "a 422 went straight to the failed registry")


# 2. A batch receive needs a visibility timeout for the whole batch, or heartbeats.
def test_batch_visibility_timeout_covers_ten_times_p99_plus_margin():
    has(
        "questions/ack-placement.md",
        "visibilitytimeout=240",
        "10 × p99 + margin = 240 s",
        "the clock starts at `receive_message` for all ten messages",
        "process the batch in parallel",
        "visibilitytimeout=60)",
    )
    lacks("questions/ack-placement.md", "visibilitytimeout=120", "after at most 120 s")


# 3. Spike arithmetic: new arrivals doom at ~24 s; the oldest message is 60 s old only at ~84 s.
def test_oldest_message_reaches_60_s_at_84_s_while_new_arrivals_doomed_from_24_s():
    has(
        INTERVIEW,
        "0.713 × t",
        "at 24 s it is only about 17 s old",
        "60 / 0.713 ≈ 84 s",
        "when new arrivals become certain to miss",
        "17,200 / 713 ≈ 24 s",
        "alert on age of the oldest message lags",
    )
    lacks(INTERVIEW, "the oldest message crosses the 60 s target", "for the first 24 s nobody notices")


# 4. RQ 3.0 dequeue: BLMOVE for one queue, BLPOP (with a loss window) for several.
def test_rq_multi_queue_workers_pop_with_blpop_and_can_lose_a_job():
    has(
        ARCH,
        "blmove",
        ":intermediate",
        "`rq worker high default low`",
        "cannot use `blmove`",
        "nothing will ever run it",
    )
    lacks(ARCH, "a worker's main process blocks on `blpop` over its queues")
    has(TRADEOFFS, "at-least-once for single-queue workers", "multi-queue worker such as `rq worker high default low`")
    lacks(TRADEOFFS, "| at-least-once via registries and heartbeats |")


# 5. Redis Streams consumer groups.
def test_redis_streams_groups_are_not_partition_capped_and_have_no_per_key_order():
    has(
        CORE,
        "redis streams** look like a log but are not partitioned",
        "no per-key order",
        "pending-entries list",
        "xautoclaim",
    )
    lacks(CORE, "(kafka, kinesis, redis streams)")


# 6. What does and does not rebalance a Kafka consumer group.
def test_partition_reassignment_between_brokers_does_not_rebalance_consumers():
    has(ARCH, "does not rebalance consumer groups", "change in its membership", "adding partitions")
    lacks(ARCH, "partition reassignment triggers rebalances")


# 7. Kafka share groups (KIP-932) and the KIP-848 rebalance protocol.
@pytest.mark.parametrize(
    "relative",
    [CORE, "questions/choosing-a-broker.md", "questions/message-ordering.md", "questions/autoscale-on-queue-age.md"],
)
def test_kafka_share_groups_and_kip_848_protocol_are_covered(relative):
    has(relative, "kip-932", "kip-848")


def test_share_groups_trade_ordering_for_per_record_acks():
    has(CORE, "a share group promises none, not even per key")
    has("questions/message-ordering.md", "give up ordering entirely, even per key")
    has("questions/choosing-a-broker.md", "per-record acknowledgement", "more consumers than partitions")
    has("questions/choosing-a-broker.md", "for classic consumer groups")
    lacks("questions/choosing-a-broker.md", "the costs: parallelism is limited by partition count")


# 8. The remaining corrections, one per claim.
def test_mm1_is_optimistic_for_bursty_traffic():
    has(RELIABILITY, "m/m/1 is optimistic", "≈ 875 ms")
    lacks(RELIABILITY, "as a pessimistic sanity check")


def test_rq_job_timeout_raises_in_the_horse_and_follows_the_retry_policy():
    has("questions/visibility-timeout-vs-job-time.md", "jobtimeoutexception", "follows the job's `retry` policy")
    lacks("questions/visibility-timeout-vs-job-time.md", "kills the job's work horse. the job is marked failed")
    lacks("questions/queue-migration-rollout.md", "`job_timeout` kills the job")


def test_abandoned_rq_jobs_are_found_by_heartbeat_score_when_a_registry_cleanup_runs():
    has("questions/consumer-crash-heartbeats.md", "scored by heartbeat expiry", "until a registry cleanup runs")
    lacks("questions/consumer-crash-heartbeats.md", "once that key expires")


def test_noeviction_makes_redis_enqueues_fail_loudly_not_vanish():
    has("questions/traffic-spikes.md", "noeviction", "fails loudly with an oom error")
    lacks("questions/traffic-spikes.md", "*silent loss.*", "bounded by `maxmemory`), messages disappear")


def test_three_layer_retry_chain_is_sixty_attempts():
    has(RELIABILITY, "5 × 4 × 3 = 60 database attempts")
    lacks(RELIABILITY, "30 database attempts")


def test_at_least_once_is_not_every_brokers_default():
    has(CORE, "redis pub/sub and nats core", "at-most-once by design", "auto-commit")
    lacks(CORE, "default for every mainstream broker")


def test_provider_wrapper_honours_retry_after():
    has(CODE, 'resp.headers.get("retry-after"', "defer_next_retry(hint)", "only ever lengthens the wait")
    for block in python_blocks(CODE):
        ast.parse(block)


def test_racing_janitors_cause_a_concurrent_duplicate_run_not_an_extra_retry():
    has(CODE, "queue.acquire_maintenance_lock()", "a concurrent duplicate, not an extra retry")
    lacks(CODE, "cost at most an extra retry")


def test_sns_fifo_topics_can_archive_and_replay():
    has("questions/queue-vs-pubsub.md", "sns fifo topics can archive messages for up to 365 days")
    lacks("questions/queue-vs-pubsub.md", "sns to sqs only delivers from the moment a subscription exists")


# Issue #24: corrections checked against the brokers' own documentation.
INTERNALS = "sections/11-broker-internals.md"
WORKFLOWS = "sections/12-workflows.md"


def test_acks_all_loses_a_write_only_when_every_in_sync_copy_is_lost_or_unclean_election():
    has(
        INTERNALS,
        "every in-sync replica that held it is lost, or unclean leader election promotes a replica that never had it",
        "decides whether the leader *accepts* an `acks=all` write",
        "at least one in-sync replica that holds it stays alive",
    )
    lacks(INTERNALS, "fewer than `min.insync.replicas` copies survive")


def test_sqs_fifo_in_flight_limit_is_120000_and_only_standard_short_polls_get_overlimit():
    has(INTERNALS, "fifo queues now allow 120,000 too", "`overlimit` error", "a fifo queue returns no error at all")
    lacks(INTERNALS, "a fifo queue 20,000", "receives return nothing even though the queue is full")


def test_brooker_jitter_results_are_reported_as_the_post_states_them():
    jitter = "questions/retry-backoff-jitter.md"
    has(
        jitter,
        "full jitter did the least work",
        "decorrelated jitter did a little more work than full jitter but finished a little sooner",
        "equal jitter did slightly more work than full jitter and took much longer",
    )
    lacks(
        jitter,
        "full jitter and decorrelated jitter finish with the fewest total calls",
        "keeps the retries partly grouped",
    )
    lacks(RELIABILITY, "behaves similarly to full jitter in practice")


def test_step_functions_guarantees_depend_on_workflow_type_and_how_express_is_started():
    has(
        WORKFLOWS,
        "an *asynchronous* express execution (`startexecution`) is at-least-once",
        "a *synchronous* one (`startsyncexecution`) is at-most-once",
        "execute exactly once",
    )
    lacks(WORKFLOWS, "run for up to 5 minutes, at-least-once")


def test_redis_streams_minid_trims_by_age_and_trimming_ignores_the_pel_until_8_2_options():
    has(CORE, "`minid` is trimming by age", "millisecond timestamp", "redis 8.2", "`keepref`", "`delref`", "`acked`")
    lacks(CORE, "by length or id (`maxlen`, `minid`) rather than by age")


def test_422_for_a_reused_key_follows_the_ietf_draft_not_stripe():
    has(CORE, "follow the ietf idempotency-key draft", "not stripe", "`idempotency_error`")
    lacks(CORE, "follow stripe's api and the ietf")


def test_sqs_message_size_is_1_mib_maximum_and_default():
    has(CORE, "sqs accepts up to 1 mib (1,048,576 bytes)", "`maximummessagesize` defaults to that maximum")
    lacks(CORE, "sqs defaults to 256 kib")


# Issue #24: say each thing once and link to it.
def test_rollout_and_rollback_are_worked_through_once_in_senior_insights_and_linked_from_production():
    production = "sections/08-production-considerations.md"
    has(
        production,
        "section:senior-level-insights#phased-rollout-in-detail",
        "section:senior-level-insights#rollback-that-actually-works",
    )
    lacks(production, "### rolling back a queue migration", "a rollback that has never been tested is a hope")
    has("sections/10-senior-level-insights.md", "### phased rollout in detail", "### rollback that actually works")


def test_checkout_capacity_and_spike_numbers_are_derived_once_and_linked():
    has(
        RELIABILITY,
        "workers = λ × s / ρ_target = 30 / 0.70 ≈ 43",
        "| 1,000/s for 10 min | 428,000 | about 25 min | about 82 min |",
    )
    has(INTERVIEW, "section:scalability-and-reliability#sizing-the-worker-pool")
    backlog = "sections/13-backlog-recovery.md"
    has(backlog, "section:scalability-and-reliability#spikes-and-backlog-arithmetic")
    lacks(backlog, "428,000 / 87", "428,000 / 287")
