from django.db import models
from django.dispatch import receiver
from django.utils import timezone

from prepsite.ownership import VisitorOwned, VisitorOwnedQuerySet
from prepsite.visitor import Visitor, anonymous_visitor_claimed


class ExperimentQuerySet(VisitorOwnedQuerySet):
    def active(self) -> "ExperimentQuerySet":
        return self.filter(status=Experiment.Status.RUNNING)


class Experiment(VisitorOwned):
    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"
        STOPPED = "stopped"

    # What per-visitor limits and the fair share count it against: prepsite.visitor.limit_key.
    limit_key = models.CharField(max_length=80, blank=True, db_index=True)
    # The per-address ceiling of an anonymous visitor's runs (prepsite.visitor.address_key); "" for accounts.
    address_key = models.CharField(max_length=80, blank=True, default="", db_index=True)
    preset = models.CharField(max_length=32)
    params = models.JSONField()
    seed = models.BigIntegerField()
    prediction = models.TextField(blank=True, max_length=2000)
    # The learner's numeric predictions, {key: number} as sandbox.liveview.predictions defines the keys per preset.
    predicted = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    summary = models.JSONField(null=True, blank=True)
    # The outcome when the run first finished (sandbox.engine.outcome.first_pass): predictions are scored
    # against it, the history lists it; a redrive or a fix changes `summary`, never this.
    first_pass = models.JSONField(null=True, blank=True)
    # The run this one repeats with one knob changed ("Run it again", "Try next"): its page offers the comparison.
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "status"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.preset}"

    @property
    def is_running(self) -> bool:
        return self.status == self.Status.RUNNING

    @property
    def scored(self) -> bool:
        """Whether its predictions can be scored: it finished on its own (not stopped early, not reaped)."""
        first = self.first_pass or {}
        return self.status != self.Status.STOPPED and not first.get("stopped_early", False)


@receiver(anonymous_visitor_claimed, dispatch_uid="sandbox_claim_anonymous_experiments")
def claim_anonymous_experiments(sender, source: Visitor, target: Visitor, **kwargs) -> None:
    """Experiments follow the visitor into their account, running ones included (they stay stoppable)."""
    Experiment.objects.owned_by(source).update(**target.owner())


class LedgerEntry(models.Model):
    """One charge: the side effect a lab job exists to produce."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="ledger")
    order_number = models.PositiveIntegerField()
    amount_cents = models.PositiveIntegerField()
    # Set when the consumer is idempotent; NULLs never collide, so non-idempotent runs can double charge.
    idempotency_key = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    job_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "idempotency_key"], name="one_charge_per_idempotency_key")
        ]

    def __str__(self) -> str:
        return f"order {self.order_number}: {self.amount_cents}c"


from sandbox.workflows.models import (  # noqa: E402, F401  (one app, its models in two modules)
    FanInBatch,
    FanInChild,
    FanInFinal,
    OutboxMessage,
    Saga,
    SagaStep,
    WorkflowEffect,
    WorkflowOrder,
)
