"""Experiment parameters: one validated form shared by the web UI and the CLI (names are a contract)."""

from django import forms

from sandbox.presets import DEFAULTS, PRESETS

MAX_JOBS = 500


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
        return data

    def parameters(self) -> dict:
        return {name: self.cleaned_data[name] for name in DEFAULTS}
