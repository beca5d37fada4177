"""The rows the workflow families write in the site's own database (imported by sandbox.models).

Each row belongs to one experiment and goes with it. Referenced by string so this module imports
nothing of the Lab and sandbox.models can import it.
"""

from django.db import models
from django.utils import timezone


class WorkflowOrder(models.Model):
    """An order the handler saved: the database half of the dual write."""

    experiment = models.ForeignKey("sandbox.Experiment", on_delete=models.CASCADE, related_name="+")
    order_number = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "order_number"], name="one_workflow_order")]

    def __str__(self) -> str:
        return f"order {self.order_number}"


class OutboxMessage(models.Model):
    """'order placed', written in the order's own transaction; a relay publishes it and marks it sent."""

    experiment = models.ForeignKey("sandbox.Experiment", on_delete=models.CASCADE, related_name="+")
    order_number = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    # SQLite has no FOR UPDATE SKIP LOCKED: a relay claims rows with a lease instead (sandbox.workflows.outbox).
    lease_until = models.FloatField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [models.Index(fields=["experiment", "sent_at"])]

    def __str__(self) -> str:
        return f"outbox order {self.order_number}"


class WorkflowEffect(models.Model):
    """What the downstream consumer did with one event (e.g. sent the confirmation e-mail)."""

    experiment = models.ForeignKey("sandbox.Experiment", on_delete=models.CASCADE, related_name="+")
    event_key = models.CharField(max_length=64)
    # Set when the consumer is idempotent; NULLs never collide, so a non-idempotent consumer repeats effects.
    idempotency_key = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "idempotency_key"], name="one_workflow_effect_per_key")
        ]

    def __str__(self) -> str:
        return f"effect of {self.event_key}"


class Saga(models.Model):
    """One order's saga (reserve stock → charge → ship), its durable state: an orchestrator resumes from it."""

    class State(models.TextChoices):
        RUNNING = "running"
        COMPLETED = "completed"
        COMPENSATING = "compensating"
        COMPENSATED = "compensated"

    experiment = models.ForeignKey("sandbox.Experiment", on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    steps_done = models.PositiveSmallIntegerField(default=0)
    undone = models.PositiveSmallIntegerField(default=0)
    failed_step = models.CharField(max_length=16, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "number"], name="one_saga_per_order")]

    def __str__(self) -> str:
        return f"saga {self.number}: {self.state}"


class SagaStep(models.Model):
    """What happened to one saga, in order: a step done, failed, undone, or an undo that failed."""

    experiment = models.ForeignKey("sandbox.Experiment", on_delete=models.CASCADE, related_name="+")
    saga = models.PositiveIntegerField()
    step = models.CharField(max_length=16)
    action = models.CharField(max_length=16)  # do, fail, undo, undo_failed
    attempt = models.PositiveSmallIntegerField(default=1)
    at = models.FloatField()  # Unix time, for the time axis

    class Meta:
        indexes = [models.Index(fields=["experiment", "saga"])]

    def __str__(self) -> str:
        return f"saga {self.saga}: {self.action} {self.step}"


class FanInBatch(models.Model):
    """One batch fanned out to `size` children; its final step must run once, after every child."""

    experiment = models.ForeignKey("sandbox.Experiment", on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    size = models.PositiveSmallIntegerField()
    done_count = models.PositiveSmallIntegerField(default=0)  # the naive design's counter (counts deliveries)
    remaining = models.SmallIntegerField()  # the atomic design's: decremented once per distinct child
    closed_at = models.FloatField(null=True, blank=True)  # set once, by compare-and-set, by whoever closes

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "number"], name="one_fan_in_batch")]

    def __str__(self) -> str:
        return f"batch {self.number}"


class FanInChild(models.Model):
    """A child's one outcome: done, or dead (its retries used up)."""

    experiment = models.ForeignKey("sandbox.Experiment", on_delete=models.CASCADE, related_name="+")
    batch = models.PositiveIntegerField()
    child = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=8)  # done, dead
    at = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "batch", "child"], name="one_fan_in_child")]

    def __str__(self) -> str:
        return f"batch {self.batch} child {self.child}: {self.status}"


class FanInFinal(models.Model):
    """One run of a batch's final step (more than one per batch is the bug the lesson shows)."""

    experiment = models.ForeignKey("sandbox.Experiment", on_delete=models.CASCADE, related_name="+")
    batch = models.PositiveIntegerField()
    at = models.FloatField()
    early = models.BooleanField()  # some child was not done yet

    def __str__(self) -> str:
        return f"final of batch {self.batch}"
