"""Experiment parameters: one validated form shared by the web UI and the CLI (names are a contract)."""

from django import forms

from sandbox.delivery import MODELS, model_for
from sandbox.engine.budget import (
    HORIZON_S,
    MAX_FAN_OUT,
    MAX_JOBS,
    MAX_PARTITIONS,
    MAX_WORKER_SECONDS,
    schedule_span_s,
    worst_case_worker_seconds,
)
from sandbox.engine.presets import DEFAULTS, PRESETS


def model_parameters() -> list[str]:
    """Each delivery model's own parameters in model order, those several models share last."""
    names = [name for model in MODELS.values() for name in model.parameters]
    return sorted(dict.fromkeys(names), key=lambda name: names.count(name) > 1)


# How the form reads, top to bottom: every parameter (DEFAULTS) and the seed, each exactly once.
FIELD_GROUPS: list[tuple[str, list[str]]] = [
    ("Traffic", ["jobs", "arrival_per_s", "queue_cap"]),
    ("Faults", ["failure_rate", "outage_s", "poison_rate", "crash_rate", "duplicate_rate"]),
    ("Retries", ["max_retries", "backoff", "backoff_base_s", "backoff_cap_s", "jitter"]),
    ("Consumer", ["idempotency", "concurrency", "duration_ms", "duration_spread_ms", "timeout_s"]),
    ("SLO", ["slo_seconds", "slo_percentile"]),
    ("Delivery model", ["model", *model_parameters()]),
    (
        "Workflow",
        [
            "workflow",
            "publish_at",
            "commit_crash_rate",
            "rollback_rate",
            "relay_crash_rate",
            "step_fail_rate",
            "compensation_fail_rate",
            "fan_out",
            "fan_in",
            "child_fail_rate",
            "child_duplicate_rate",
            "stage_ms",
            "slow_stage_ms",
            "slow_at_s",
            "stage_bound",
            "stage_fail_rate",
            "urgent_every",
            "urgent_ms",
            "reserved",
        ],
    ),
    ("Repeat a run", ["seed"]),
]


# Parameters added after runs, forms and scripts already existed: blank means the default.
DEFAULTED = (
    "outage_s", "model", "visibility_timeout_s", "lease_extension", "partitions", "order_keys", "on_failure",
    "kill_consumer_at_s", "workflow", "publish_at", "commit_crash_rate", "rollback_rate", "relay_crash_rate",
    "step_fail_rate", "compensation_fail_rate", "fan_out", "fan_in", "child_fail_rate", "child_duplicate_rate",
    "stage_ms", "slow_stage_ms", "slow_at_s", "stage_bound", "stage_fail_rate", "urgent_every", "urgent_ms", "reserved",
)  # fmt: skip


def preset_overrides(name: str) -> set[str]:
    """The parameters a preset sets differently from DEFAULTS (what makes it that lesson); none if unknown."""
    preset = PRESETS.get(name)
    if preset is None:
        return set()
    return {key for key, value in preset.parameters().items() if value != DEFAULTS[key]}


class ExperimentForm(forms.Form):
    """The field names are a contract (CLI `--set NAME=VALUE`, URLs, stored params); the labels are for people."""

    preset = forms.ChoiceField(label="Preset", choices=[(name, p.title) for name, p in PRESETS.items()])
    jobs = forms.IntegerField(label="Messages to send", min_value=1, max_value=MAX_JOBS, help_text="1–500 charges")
    arrival_per_s = forms.FloatField(
        label="Arrivals per second", min_value=0, max_value=100, help_text="0 = all at once"
    )
    queue_cap = forms.IntegerField(
        label="Most messages in flight before shedding",
        min_value=1,
        max_value=MAX_JOBS,
        help_text="the rest are rejected at the door",
    )
    failure_rate = forms.FloatField(
        label="Chance an attempt fails (transient)", min_value=0, max_value=1, help_text="0–1, e.g. a 503"
    )
    outage_s = forms.FloatField(
        label="Provider down for the first (s)",
        required=False,  # a form posted before this field existed means no outage
        min_value=0,
        max_value=60,
        help_text="every attempt that starts in these first seconds fails, all together",
    )
    poison_rate = forms.FloatField(
        label="Share of messages that always fail (poison)", min_value=0, max_value=1, help_text="0–1"
    )
    crash_rate = forms.FloatField(
        label="Chance an attempt's worker is killed", min_value=0, max_value=1, help_text="0–1, SIGKILL mid-job"
    )
    duplicate_rate = forms.FloatField(
        label="Share of messages delivered twice", min_value=0, max_value=1, help_text="0–1, a lost ack"
    )
    max_retries = forms.IntegerField(
        label="Retries after the first attempt", min_value=0, max_value=10, help_text="then the DLQ"
    )
    backoff = forms.ChoiceField(
        label="Wait between retries", choices=[("fixed", "the same each time"), ("exponential", "doubling")]
    )
    backoff_base_s = forms.FloatField(
        label="First retry's wait (s)", min_value=0, max_value=60, help_text="before jitter"
    )
    backoff_cap_s = forms.FloatField(
        label="Longest wait (s)", min_value=0, max_value=300, help_text="doubling stops here"
    )
    jitter = forms.ChoiceField(
        label="Randomize the waits (jitter)",
        choices=[("none", "none: exact waits"), ("full", "full: 0 to the wait"), ("equal", "equal: half to the wait")],
    )
    idempotency = forms.ChoiceField(
        label="Charge at most once per order (idempotency)", choices=[("on", "on"), ("off", "off")]
    )
    concurrency = forms.IntegerField(
        label="Worker slots asked for", min_value=1, max_value=8, help_text="you get at most your fair share"
    )
    duration_ms = forms.IntegerField(
        label="Work per attempt (ms)", min_value=0, max_value=10_000, help_text="how long one charge takes"
    )
    duration_spread_ms = forms.IntegerField(
        label="Work varies by ± (ms)", min_value=0, max_value=5_000, help_text="random per attempt"
    )
    timeout_s = forms.IntegerField(
        label="Give up on an attempt after (s)", min_value=1, max_value=30, help_text="RQ's job_timeout"
    )
    slo_seconds = forms.FloatField(
        label="Latency target (s)", min_value=0.1, max_value=600, help_text="from arrival to the last outcome"
    )
    slo_percentile = forms.IntegerField(
        label="Share of jobs that must meet it (%)", min_value=50, max_value=100, help_text="e.g. 95 for p95"
    )
    model = forms.ChoiceField(
        label="Delivery model",
        required=False,
        choices=[(model.name, model.choice) for model in MODELS.values()],
    )
    visibility_timeout_s = forms.FloatField(
        label="Visibility timeout (s)",
        required=False,
        min_value=0.2,
        max_value=60,
        help_text="stream: an unacknowledged message goes to another consumer after this",
    )
    lease_extension = forms.ChoiceField(
        label="Extend the lease while working",
        required=False,
        choices=[("off", "off"), ("on", "on: re-claim every second")],
        help_text="stream: SQS's ChangeMessageVisibility",
    )
    partitions = forms.IntegerField(
        label="Partitions", required=False, min_value=1, max_value=MAX_PARTITIONS, help_text="log: one owner each"
    )
    order_keys = forms.IntegerField(
        label="Customers (order keys)",
        required=False,
        min_value=1,
        max_value=50,
        help_text="message k belongs to customer k mod this; each customer's events must apply in order",
    )
    on_failure = forms.ChoiceField(
        label="A failed message in the log",
        required=False,
        choices=[("retry_topic", "parks on a retry topic"), ("block", "retries in place (blocks its partition)")],
    )
    kill_consumer_at_s = forms.FloatField(
        label="Kill a consumer after (s)",
        required=False,
        min_value=0,
        max_value=60,
        help_text="stream/log: the consumer holding the next message is SIGKILLed; 0 = never",
    )
    workflow = forms.ChoiceField(
        label="Around the queue",
        required=False,
        choices=[
            ("none", "nothing: each message charges an order"),
            ("dual_write", "dual write: save the order, publish the event"),
            ("outbox", "outbox: save the order and its event row; a relay publishes"),
            ("saga", "saga: reserve, charge, ship; compensate on failure"),
            ("fan_in", "fan-in: a batch of child jobs, then one final step"),
            ("pipeline", "pipeline: three stages with a queue before each later one"),
            ("priority", "priority: long low-priority jobs beside short urgent ones"),
        ],
    )
    publish_at = forms.ChoiceField(
        label="Dual write publishes",
        required=False,
        choices=[("on_commit", "after the COMMIT (on_commit)"), ("in_transaction", "inside the transaction")],
    )
    commit_crash_rate = forms.FloatField(
        label="Chance a request dies right after its COMMIT",
        required=False,
        min_value=0,
        max_value=1,
        help_text="0–1, SIGKILL of the work-horse",
    )
    rollback_rate = forms.FloatField(
        label="Chance a request's transaction rolls back",
        required=False,
        min_value=0,
        max_value=1,
        help_text="0–1, after its writes",
    )
    relay_crash_rate = forms.FloatField(
        label="Chance the outbox relay dies mid-pass",
        required=False,
        min_value=0,
        max_value=1,
        help_text="0–1, after publishing, before marking sent",
    )
    step_fail_rate = forms.FloatField(
        label="Chance a saga step fails for good",
        required=False,
        min_value=0,
        max_value=1,
        help_text="0–1, per step: the saga compensates",
    )
    compensation_fail_rate = forms.FloatField(
        label="Chance a compensation attempt fails",
        required=False,
        min_value=0,
        max_value=1,
        help_text="0–1, transient: retried with backoff",
    )
    fan_out = forms.IntegerField(
        label="Children per batch", required=False, min_value=1, max_value=MAX_FAN_OUT, help_text="fan-in: real RQ jobs"
    )
    fan_in = forms.ChoiceField(
        label="Close the batch",
        required=False,
        choices=[("atomic", "atomic: count each child once, compare-and-set"), ("naive", "naive: count deliveries")],
    )
    child_fail_rate = forms.FloatField(
        label="Chance a child attempt fails", required=False, min_value=0, max_value=1, help_text="0–1, retried"
    )
    child_duplicate_rate = forms.FloatField(
        label="Share of children delivered twice", required=False, min_value=0, max_value=1, help_text="0–1, a lost ack"
    )
    stage_ms = forms.IntegerField(
        label="Work per item at stages 2 and 3 (ms)",
        required=False,
        min_value=0,
        max_value=5_000,
        help_text="pipeline: one consumer per stage",
    )
    slow_stage_ms = forms.IntegerField(
        label="Stage 3's work once it slows (ms)",
        required=False,
        min_value=0,
        max_value=5_000,
        help_text="pipeline: the last stage slows down mid-run",
    )
    slow_at_s = forms.FloatField(
        label="Stage 3 slows after (s)", required=False, min_value=0, max_value=60, help_text="pipeline: from the start"
    )
    stage_bound = forms.IntegerField(
        label="Most items in each stage's queue",
        required=False,
        min_value=0,
        max_value=MAX_JOBS,
        help_text="pipeline: 0 = unbounded; full, the stage before waits and the front sheds",
    )
    stage_fail_rate = forms.FloatField(
        label="Chance a stage attempt fails",
        required=False,
        min_value=0,
        max_value=1,
        help_text="pipeline: 0–1, the stage retries the item in place",
    )
    urgent_every = forms.IntegerField(
        label="Every k-th message is urgent",
        required=False,
        min_value=0,
        max_value=MAX_JOBS,
        help_text="priority: 0 = none; urgent jobs go to the front of the queue",
    )
    urgent_ms = forms.IntegerField(
        label="Work per urgent job (ms)", required=False, min_value=0, max_value=10_000, help_text="priority"
    )
    reserved = forms.IntegerField(
        label="Worker slots only urgent jobs may use",
        required=False,
        min_value=0,
        max_value=4,
        help_text="priority: a reserved pool inside your fair share; 0 = none",
    )
    seed = forms.IntegerField(
        label="Seed",
        required=False,
        min_value=0,
        max_value=2**31 - 1,
        help_text="the same seed repeats the same faults and waits; blank = random",
    )
    prediction = forms.CharField(
        label="What do you expect to see?",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    @classmethod
    def for_run(cls, params: dict, preset: str, seed: int) -> "ExperimentForm":
        """The form filled with an earlier run: same parameters, same seed ('run it again')."""
        return cls(initial={**PRESETS[preset].parameters(), **params, "preset": preset, "seed": seed})

    def groups(self, preset: str) -> list[dict]:
        """The parameter fields in FIELD_GROUPS order, each marked when the preset sets it."""
        overrides = preset_overrides(preset)
        return [
            {"title": title, "fields": [{"field": self[name], "set_by_preset": name in overrides} for name in names]}
            for title, names in FIELD_GROUPS
        ]

    @classmethod
    def for_preset(cls, name: str, data=None) -> "ExperimentForm":
        preset = PRESETS.get(name) or PRESETS["happy"]
        return cls(data=data, initial={"preset": preset.name, **preset.parameters()})

    def clean(self):
        data = super().clean()
        for name in DEFAULTED:  # forms and CLIs from before these parameters leave them out
            if data.get(name) in (None, ""):
                data[name] = DEFAULTS[name]
        if self.errors:
            return data
        if data["backoff_cap_s"] < data["backoff_base_s"]:
            self.add_error("backoff_cap_s", "The cap must be at least the base delay.")
        if data["workflow"] != "none" and model_for(data).consumed:
            self.add_error("workflow", "The workflow families run on the rq model only.")
        if data.get("workflow") == "priority" and data["reserved"] and data["reserved"] >= data["concurrency"]:
            self.add_error("reserved", "Reserve fewer slots than you ask for: the low-priority jobs need one too.")
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
