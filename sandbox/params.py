"""Experiment parameters: one validated form shared by the web UI and the CLI (names are a contract)."""

from django import forms

from sandbox.presets import DEFAULTS, PRESETS
from sandbox.retry_policy import backoff_ceiling

MAX_JOBS = 500
# Every arrival and every worst-case retry of an experiment falls within this window. SQS caps a
# message's delay at 15 minutes for the same reason: past that it is a scheduled task, not a queue
# message, and a shared lab must not hold work (and everyone's capacity) for longer.
HORIZON_S = 15 * 60
MAX_WORKER_SECONDS = 900  # worst-case worker time one experiment may ask of the shared workers


def attempt_seconds(params: dict) -> float:
    """The longest one attempt can hold a worker: its work, or the timeout that kills it."""
    return min((params["duration_ms"] + params["duration_spread_ms"]) / 1000, params["timeout_s"])


def admitted_jobs(params: dict) -> int:
    return min(params["jobs"], params["queue_cap"])


def schedule_span_s(params: dict) -> float:
    """From the first arrival to the last possible end of the last job: arrivals, then every retry's
    longest wait and every attempt at its longest."""
    arrivals = (admitted_jobs(params) - 1) / params["arrival_per_s"] if params["arrival_per_s"] > 0 else 0.0
    waits = sum(
        backoff_ceiling(
            attempt=n, backoff=params["backoff"], base_s=params["backoff_base_s"], cap_s=params["backoff_cap_s"]
        )
        for n in range(1, params["max_retries"] + 1)
    )
    return arrivals + waits + (params["max_retries"] + 1) * attempt_seconds(params)


def worst_case_worker_seconds(params: dict, jobs: int | None = None) -> float:
    """Worker time the run (or `jobs` of its messages) may take: every attempt, every duplicate delivery."""
    messages = admitted_jobs(params) if jobs is None else jobs
    deliveries = messages * (1 + params["duplicate_rate"])
    return deliveries * (params["max_retries"] + 1) * attempt_seconds(params)


class ExperimentForm(forms.Form):
    preset = forms.ChoiceField(choices=[(name, p.title) for name, p in PRESETS.items()])
    jobs = forms.IntegerField(min_value=1, max_value=MAX_JOBS, help_text="messages to send (1–500)")
    failure_rate = forms.FloatField(min_value=0, max_value=1, help_text="chance an attempt fails transiently")
    poison_rate = forms.FloatField(min_value=0, max_value=1, help_text="share of messages that always fail")
    duration_ms = forms.IntegerField(min_value=0, max_value=10_000, help_text="work per attempt")
    duration_spread_ms = forms.IntegerField(min_value=0, max_value=5_000, help_text="± random spread")
    timeout_s = forms.IntegerField(min_value=1, max_value=30, help_text="RQ job_timeout")
    max_retries = forms.IntegerField(min_value=0, max_value=10)
    backoff = forms.ChoiceField(choices=[("fixed", "fixed"), ("exponential", "exponential")])
    backoff_base_s = forms.FloatField(min_value=0, max_value=60, help_text="first retry delay")
    backoff_cap_s = forms.FloatField(min_value=0, max_value=300, help_text="longest retry delay")
    jitter = forms.ChoiceField(choices=[("none", "none"), ("full", "full"), ("equal", "equal")])
    idempotency = forms.ChoiceField(choices=[("on", "on"), ("off", "off")])
    duplicate_rate = forms.FloatField(min_value=0, max_value=1, help_text="messages delivered twice")
    queue_cap = forms.IntegerField(min_value=1, max_value=MAX_JOBS, help_text="max in flight before shedding")
    concurrency = forms.IntegerField(min_value=1, max_value=8, help_text="this experiment's worker slots")
    crash_rate = forms.FloatField(min_value=0, max_value=1, help_text="attempts whose work-horse is killed")
    arrival_per_s = forms.FloatField(min_value=0, max_value=100, help_text="0 = all at once")
    slo_seconds = forms.FloatField(min_value=0.1, max_value=600, help_text="latency target")
    slo_percentile = forms.IntegerField(min_value=50, max_value=100, help_text="e.g. 95 for p95")
    seed = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1, help_text="blank = random")
    prediction = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))

    @classmethod
    def for_preset(cls, name: str, data=None) -> "ExperimentForm":
        preset = PRESETS.get(name) or PRESETS["happy"]
        return cls(data=data, initial={"preset": preset.name, **preset.parameters()})

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if data["backoff_cap_s"] < data["backoff_base_s"]:
            self.add_error("backoff_cap_s", "The cap must be at least the base delay.")
        if data["failure_rate"] + data["crash_rate"] > 1:
            self.add_error("crash_rate", "failure_rate + crash_rate must not exceed 1.")
        if self.errors:
            return data
        span = schedule_span_s(data)
        if span > HORIZON_S:
            self.add_error(
                None,
                f"This run's arrivals and worst-case retries span {span:,.0f} s; every experiment must fit in "
                f"{HORIZON_S // 60} minutes ({HORIZON_S} s). Raise arrival_per_s, or lower jobs, max_retries, "
                "backoff_cap_s or duration_ms.",
            )
        worst = worst_case_worker_seconds(data)
        if worst > MAX_WORKER_SECONDS:
            self.add_error(
                None,
                f"This run could use {worst:,.0f} worker-seconds (every attempt and duplicate at its longest); the "
                f"limit per experiment is {MAX_WORKER_SECONDS}. Lower jobs, duration_ms, max_retries or duplicate_rate.",
            )
        return data

    def parameters(self) -> dict:
        return {name: self.cleaned_data[name] for name in DEFAULTS}
