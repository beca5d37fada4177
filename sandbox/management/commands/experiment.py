"""python manage.py experiment run <preset> | list | redrive <id> — the Lab from a terminal."""

import argparse
import json
import math
import sys
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from redis.exceptions import RedisError

from prepsite.redis_conn import redis_is_full
from prepsite.visitor import CLI
from sandbox import delivery
from sandbox.engine import experiments, live
from sandbox.engine import outcome as run_outcome
from sandbox.engine.presets import DEFAULTS, PRESETS
from sandbox.models import Experiment
from sandbox.params import ExperimentForm

KNOWN = {*DEFAULTS, "seed"}
BLIP_SECONDS = 30  # how long a run keeps following through a Redis outage before giving up


MAX_FOLLOW_S = 24 * 60 * 60


def follow_seconds(raw: str) -> float:
    """--timeout: a finite number of seconds, more than 0 (nan, inf and negatives are usage errors)."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {raw!r}") from None
    if not math.isfinite(value) or not 0 < value <= MAX_FOLLOW_S:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_FOLLOW_S} seconds, got {raw!r}")
    return value


def parse_sets(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CommandError(f"--set expects name=value, got {pair!r}", returncode=2)
        if name not in KNOWN:
            raise CommandError(f"--set: no parameter {name!r}; known: {', '.join(sorted(KNOWN))}", returncode=2)
        values[name] = value.strip()
    return values


def redis_problem(exc: RedisError) -> str:
    if redis_is_full(exc):
        return f"Redis is full ({exc}); free memory or raise maxmemory"
    return f"Redis is not answering ({exc}); start it or check REDIS_URL"


def result_line(experiment: Experiment, state: live.LiveState, elapsed: float) -> dict:
    """The JSON summary: the same outcome the live view shows (sandbox.liveview.readmodel), plus the run's own."""
    outcome = run_outcome.outcome(experiment, state)
    return {
        "id": experiment.pk,
        "preset": experiment.preset,
        "model": delivery.model_for(experiment.params).name,
        "seed": experiment.seed,
        **outcome,
        "elapsed_s": round(elapsed, 2),
    }


class Command(BaseCommand):
    help = "Run, list and redrive Lab experiments against the running workers."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser("run", help="start an experiment and follow it to the end")
        run.add_argument("preset", choices=sorted(PRESETS))
        run.add_argument("--jobs", type=int)
        run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
        run.add_argument("--seed", type=int)
        run.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        run.add_argument(
            "--timeout", type=follow_seconds, default=300, help="give up following after this many seconds"
        )
        sub.add_parser("list", help="recent experiments")
        redrive = sub.add_parser("redrive", help="redrive every dead-lettered job of an experiment")
        redrive.add_argument("id", type=int)

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"handle_{action}")(**options)
        except RedisError as exc:
            raise CommandError(redis_problem(exc)) from exc

    def handle_run(
        self, *, preset: str, jobs: int | None, set: list[str], seed: int | None, json: bool, timeout: float, **_
    ):
        data = {**PRESETS[preset].parameters(), **parse_sets(set), "preset": preset}
        if jobs is not None:
            data["jobs"] = jobs
        if seed is not None:
            data["seed"] = seed
        form = ExperimentForm(data=data)
        if not form.is_valid():
            problems = "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
            self.stderr.write(f"invalid parameters: {problems}")
            sys.exit(2)
        try:
            experiment = experiments.experiment_start(
                owner=CLI, preset=preset, params=form.parameters(), seed=form.cleaned_data["seed"]
            )
        except (experiments.LimitExceeded, experiments.StartFailed) as exc:
            raise CommandError(str(exc)) from exc
        started = time.monotonic()
        state = self.follow(experiment)
        while not state.finished and time.monotonic() - started < timeout:
            self.progress(state)
            time.sleep(0.5)
            state = self.follow(experiment)
        self.progress(state, final=True)
        summary = result_line(experiment, state, time.monotonic() - started)
        for name in ("requested", "enqueued", "rejected", "succeeded", "dead_lettered", "stopped", "retries",
                     "duplicates_suppressed", "double_charges", "p50_ms", "p95_ms", "slo_met"):  # fmt: skip
            self.stdout.write(f"  {name:<22} {summary[name]}")
        if not state.finished:
            self.stderr.write(
                f"still running after {timeout:.0f}s: experiment {experiment.pk} continues in the background"
            )
        if json:
            self.stdout.write(json_dumps(summary))

    def follow(self, experiment: Experiment) -> live.LiveState:
        """Read the run's state, riding out a Redis blip (the run itself carries on without us)."""
        lost_at = None
        while True:
            try:
                return run_outcome.read_state(experiment)
            except RedisError as exc:
                lost_at = lost_at or time.monotonic()
                if time.monotonic() - lost_at > BLIP_SECONDS:
                    raise
                self.stderr.write(f"\r{redis_problem(exc)}; retrying (experiment {experiment.pk} carries on)")
                time.sleep(1)

    def progress(self, state: live.LiveState, final: bool = False) -> None:
        total = max(1, state.counters.get("enqueued", 0))
        done = state.terminal
        width = 30
        filled = int(width * min(done, total) / total)
        bar = "#" * filled + "-" * (width - filled)
        line = f"\r[{bar}] {done}/{total} done, {len(state.running)} running, {len(state.scheduled)} waiting to retry"
        self.stderr.write(line, ending="\n" if final else "")
        self.stderr.flush()

    def handle_list(self, **_):
        for experiment in Experiment.objects.all()[:20]:
            summary = experiment.summary or {}
            self.stdout.write(
                f"{experiment.pk:>5}  {experiment.preset:<14} {experiment.status:<9} "
                f"ok={summary.get('succeeded', '-')} dlq={summary.get('dead_lettered', '-')} "
                f"{experiment.created_at:%Y-%m-%d %H:%M}"
            )

    def handle_redrive(self, *, id: int, **_):
        experiment = Experiment.objects.filter(pk=id).first()
        if experiment is None:
            raise CommandError(f"no experiment {id}")
        count = experiments.experiment_redrive(experiment)
        self.stdout.write(f"redrove {count} job(s) of experiment {id} with their retry budget restored")


def json_dumps(value: dict) -> str:
    return json.dumps(value, sort_keys=True)
