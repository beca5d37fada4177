"""The Lab's pages and fragments over real Redis and real workers: what a visitor sees and can do."""

import re

import pytest
from django.urls import reverse

from prepsite import charts
from sandbox.engine import experiments, limits, live
from sandbox.engine.presets import PRESETS
from sandbox.engine.series import MAX_POINTS, depth_samples, lag_series, retry_histogram, series_from_buckets
from sandbox.liveview import readmodel
from sandbox.liveview.explain import explain
from sandbox.models import Experiment
from tests.conftest import wait_for
from tests.sandbox.helpers import FAST, anonymous_visitor, wait_finished, wait_state

PANEL_IDS = [
    "panel-counters",
    "panel-charts",
    "panel-latency",
    "panel-timeline",
    "panel-dlq",
    "panel-workers",
    "panel-events",
    "panel-outcome",
]
HX = {"HTTP_HX_REQUEST": "true"}


visitor = anonymous_visitor


def form_data(name: str = "happy", **overrides) -> dict:
    data = {**PRESETS[name].parameters(), "preset": name, "seed": "7", "prediction": ""}
    data.update(overrides)
    return {name: str(value) for name, value in data.items()}


def start_via_form(client, name: str = "happy", **overrides) -> Experiment:
    response = client.post(reverse("sandbox:start"), form_data(name, **overrides))
    assert response.status_code == 302, response.content[:2000]
    return Experiment.objects.get(pk=int(response["Location"].rstrip("/").split("/")[-1]))


# ---------------------------------------------------------------- home and start


@pytest.mark.django_db
def test_lab_home_shows_every_preset_with_its_study_link_and_a_prediction_box(client, queueing):
    response = client.get(reverse("sandbox:home"))
    assert response.status_code == 200
    body = response.content.decode()
    for preset in PRESETS.values():
        assert preset.title in body
        assert f"/topics/queueing/{preset.section}/" in body
    core = queueing.sections.get(slug="core-concepts")
    assert f"Study: {core.title}" in body
    assert 'name="prediction"' in body
    assert 'name="predict-' in body  # structured predictions: numbers, checked against the outcome


@pytest.mark.django_db
def test_preset_query_preselects_its_defaults(client):
    response = client.get(reverse("sandbox:home"), {"preset": "poison"})
    assert response.status_code == 200
    assert response.context["preset"].name == "poison"
    assert response.context["form"]["poison_rate"].value() == 1.0
    assert "Poison messages: predict, then start" in response.content.decode()


@pytest.mark.django_db
def test_unknown_preset_falls_back_to_happy_with_a_note(client):
    response = client.get(reverse("sandbox:home"), {"preset": "<script>nope"})
    assert response.status_code == 200
    assert response.context["preset"].name == "happy"
    body = response.content.decode()
    assert "There is no preset with that name" in body
    assert "<script>nope" not in body


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"preset": "nope"}, "preset", "Select a valid choice"),
        ({"jobs": "0"}, "jobs", "greater than or equal to 1"),
        ({"jobs": "501"}, "jobs", "less than or equal to 500"),
        ({"jobs": "abc"}, "jobs", "Enter a whole number"),
        ({"failure_rate": "2"}, "failure_rate", "less than or equal to 1"),
        ({"prediction": "x" * 2001}, "prediction", "at most 2000 characters"),
        ({"backoff_base_s": "10", "backoff_cap_s": "1"}, "backoff_cap_s", "at least the base delay"),
    ],
)
def test_bad_input_re_renders_the_form_with_a_message_and_400(client, overrides, field, message):
    response = client.post(reverse("sandbox:start"), form_data("happy", **overrides))
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert message in response.content.decode()
    assert not Experiment.objects.exists()


@pytest.mark.django_db
def test_bad_input_through_htmx_returns_only_the_start_panel(client):
    response = client.post(reverse("sandbox:start"), form_data("happy", jobs="0"), **HX)
    assert response.status_code == 400
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="start-panel"')
    assert "<html" not in body


@pytest.mark.django_db
def test_get_on_start_is_not_allowed(client):
    assert client.get(reverse("sandbox:start")).status_code == 405


# ---------------------------------------------------------------- with real workers

workers = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]


@pytest.mark.django_db
def test_start_redirects_to_the_live_view_and_htmx_gets_a_client_redirect(client, lab_engine):
    experiment = start_via_form(client, "happy", jobs=3, prediction="none in the DLQ", **FAST)
    assert experiment.prediction == "none in the DLQ"
    assert experiment.params["jobs"] == 3
    response = client.post(reverse("sandbox:start"), form_data("happy", jobs=2, **FAST), **HX)
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/sandbox/experiments/")
    lab_engine.finish_all(*Experiment.objects.all())


@pytest.mark.django_db
def test_finished_experiment_page_has_every_panel_and_the_poll_stops_with_286(client, queueing, lab_engine):
    experiment = start_via_form(client, "happy", jobs=3, prediction="<b>all three</b> succeed", **FAST)
    lab_engine.finish(experiment)
    page = client.get(reverse("sandbox:detail", args=[experiment.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    for panel in PANEL_IDS:
        assert f'id="{panel}"' in body
    assert "hx-swap-oob" not in body
    assert "Refresh" in body
    assert 'data-counter="succeeded"><div class="n">3<' in body
    assert "What happened" in body
    assert "&lt;b&gt;all three&lt;/b&gt;" in body
    assert "<b>all three</b>" not in body
    assert 'role="img"' in body
    assert "<title" in body
    assert "/topics/queueing/core-concepts/" in body

    poll = client.get(reverse("sandbox:live", args=[experiment.pk]), **HX)
    assert poll.status_code == 286
    fragment = poll.content.decode()
    for panel in PANEL_IDS:
        assert re.search(rf'<section id="{panel}"[^>]* hx-swap-oob="morph"', fragment), panel
    assert "<html" not in fragment
    assert 'hx-trigger="every 1s"' not in fragment


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_running_experiment_polls_every_second_and_shows_running_jobs_with_crash_buttons(client, rq_workers):
    experiment = start_via_form(client, "happy", jobs=2, duration_ms=4000, duration_spread_ms=0, max_retries=0)
    wait_state(experiment, lambda s: s.running, 20, "a running job")
    page = client.get(reverse("sandbox:detail", args=[experiment.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in page
    assert reverse("sandbox:live", args=[experiment.pk]) in page
    poll = client.get(reverse("sandbox:live", args=[experiment.pk]), **HX)
    assert poll.status_code == 200
    fragment = poll.content.decode()
    assert "Crash its worker" in fragment
    assert "Stop experiment" in fragment
    assert 'id="panel-workers" class="panel" hx-swap-oob="morph"' in fragment
    response = client.post(reverse("sandbox:stop", args=[experiment.pk]))
    assert response.status_code == 302
    state = wait_finished(experiment, 30)
    assert state.counters["stopped"] + state.counters["succeeded"] == 2


@pytest.mark.django_db
def test_a_stop_that_ends_the_run_at_once_announces_it_stopped_early(client, lab_engine):
    """Nothing has started, so Stop takes every job off and the run ends inside the request."""
    experiment = start_via_form(client, "happy", jobs=3)
    fragment = client.post(reverse("sandbox:stop", args=[experiment.pk]), **HX).content.decode()
    assert "Stopping: 3 jobs taken off" in fragment
    assert "Stopped early (not scored): 0 succeeded" in fragment
    assert "Finished:" not in fragment


def test_a_run_with_stopped_jobs_is_announced_as_stopped_before_its_row_says_so():
    """Under load a Stop's answer was drawn after the last job ended in Redis but before the worker wrote the
    row: the row still looked scoreable and the run was announced as "Finished: 23 succeeded"."""
    row = Experiment(pk=1, status=Experiment.Status.RUNNING, first_pass=None)
    finished = live.LiveState(experiment_id=1, exists=True, finished=True)
    said = readmodel.announcements(row, finished, {"succeeded": 23, "stopped": 17, "slo_met": True})
    assert said[-1]["text"].startswith("Stopped early (not scored): 23 succeeded")
    assert readmodel.announcements(row, finished, {"succeeded": 40})[-1]["text"].startswith("Finished: 40")


@pytest.mark.django_db
def test_dead_letters_are_listed_and_redrive_and_discard_act_on_them(client, lab_engine):
    experiment = start_via_form(
        client, "poison", jobs=2, max_retries=0, backoff_base_s=1, backoff_cap_s=1, duration_ms=20, duration_spread_ms=0
    )
    lab_engine.finish(experiment)
    body = client.get(reverse("sandbox:detail", args=[experiment.pk])).content.decode()
    assert "Redrive all" in body
    assert "PoisonMessage" in body
    assert 'id="dlq-count">2<' in body

    response = client.post(reverse("sandbox:discard", args=[experiment.pk]), {"job": "1"}, **HX)
    assert response.status_code == 200
    assert "Discarded 1 job" in response.content.decode()
    assert client.post(reverse("sandbox:discard", args=[experiment.pk]), {"job": "1"}, **HX).status_code == 200

    response = client.post(reverse("sandbox:redrive", args=[experiment.pk]))
    assert response.status_code == 302
    assert client.post(reverse("sandbox:redrive", args=[experiment.pk])).status_code == 302  # double submit
    lab_engine.run_until(
        lambda: live.read(experiment.pk).counters["redriven"] == 1 and live.read(experiment.pk).finished
    )
    state = live.read(experiment.pk)
    assert state.dlq == [2]
    assert state.counters["discarded"] == 1
    assert client.post(reverse("sandbox:redrive", args=[experiment.pk]), {"job": "abc"}).status_code == 400


@pytest.mark.django_db
def test_history_lists_experiments_and_compare_highlights_differences(client, lab_engine):
    a = start_via_form(client, "happy", jobs=2, **FAST)
    b = start_via_form(client, "happy", jobs=3, **FAST)
    lab_engine.finish(a)
    lab_engine.finish(b)
    history = client.get(reverse("sandbox:history")).content.decode()
    assert f'value="{a.pk}"' in history
    assert f'value="{b.pk}"' in history
    response = client.get(reverse("sandbox:compare"), {"a": a.pk, "b": b.pk})
    assert response.status_code == 200
    jobs_row = next(row for row in response.context["params"] if row["name"] == "jobs")
    assert jobs_row == {"name": "jobs", "a": 2, "b": 3, "differs": True}
    assert 'class="differs"' in response.content.decode()
    ticked = client.get(reverse("sandbox:compare") + f"?id={a.pk}&id={b.pk}")
    assert ticked.status_code == 200
    assert client.get(reverse("sandbox:compare"), {"id": a.pk}).status_code == 400
    assert client.get(reverse("sandbox:compare"), {"a": "x", "b": "1"}).status_code == 400


@pytest.mark.django_db
def test_a_fourth_running_experiment_is_refused_with_429_and_the_message(client, lab_engine):
    # One message now, the other 30 s later: each run stays "running" without keeping a worker busy.
    slow = dict(jobs=2, arrival_per_s=1 / 30, duration_ms=20, duration_spread_ms=0)
    started = [start_via_form(client, "slow-consumer", **slow) for _ in range(3)]
    response = client.post(reverse("sandbox:start"), form_data("slow-consumer", **slow))
    assert response.status_code == 429
    assert "already have 3 experiments running" in response.content.decode()
    htmx = client.post(reverse("sandbox:start"), form_data("slow-consumer", **slow), **HX)
    assert htmx.status_code == 429
    assert 'id="limit-message"' in htmx.content.decode()
    for experiment in started:
        experiments.experiment_stop(experiment)


# ---------------------------------------------------------------- delivery models: consumers, partitions, compare


def consumers_running(pool) -> None:
    """Stream and log runs need live consumers; the session's pool rejoins within seconds of a Redis restart."""
    from prepsite.redis_conn import get_redis
    from sandbox import delivery
    from tests.conftest import CONSUMERS

    wait_for(lambda: len(delivery.members(get_redis())) >= CONSUMERS, 30, message="stream/log consumers to join")


def own_run(client, preset: str = "rebalance", **overrides) -> Experiment:
    """A run row of the client's visitor (no jobs): enough for the checks that come before any work."""
    owner = visitor(client)
    params = {**PRESETS[preset].parameters(), **overrides}
    return Experiment.objects.create(anon_id=owner.anon_id, preset=preset, params=params, seed=1)


def kill(client, experiment: Experiment, name: str, **extra):
    return client.post(reverse("sandbox:kill_consumer", args=[experiment.pk]), {"consumer": name}, **extra)


@pytest.mark.django_db
def test_killing_a_consumer_of_another_visitors_run_is_a_404(client):
    other = Experiment.objects.create(
        anon_id="someone-else", preset="rebalance", params=PRESETS["rebalance"].parameters(), seed=1
    )
    visitor(client)
    assert kill(client, other, "c1-123").status_code == 404
    assert client.get(reverse("sandbox:kill_consumer", args=[other.pk])).status_code == 405


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["", "c1", "c1-", "x1-123", "c1-12a", "c123-1", "<b>c1-1</b>", "c1-1 ", "c1-" + "9" * 5000]
)
def test_a_consumer_name_that_is_not_one_is_a_400(client, name):
    experiment = own_run(client)
    response = kill(client, experiment, name)
    assert response.status_code == 400
    assert "Pick one from the list" in response.content.decode()


@pytest.mark.django_db
def test_killing_a_consumer_of_an_ended_or_rq_run_is_refused_with_a_message(client):
    ended = own_run(client)
    Experiment.objects.filter(pk=ended.pk).update(status=Experiment.Status.FINISHED)
    response = kill(client, ended, "c1-123")
    assert response.status_code == 400
    assert f"Experiment #{ended.pk} has ended" in response.content.decode()
    assert 'id="lab-flash" role="status" class="msg msg-error"' in response.content.decode()  # the whole page
    fragment = kill(client, ended, "c1-123", **HX)
    assert fragment.status_code == 400
    assert 'id="lab-flash" role="status" class="msg msg-error" hx-swap-oob="morph"' in fragment.content.decode()
    on_rq = own_run(client, "ordering")
    assert on_rq.params["model"] == "rq"
    response = kill(client, on_rq, "c1-123")
    assert response.status_code == 400
    assert "This run is on RQ" in response.content.decode()


@pytest.mark.django_db
def test_consumer_kills_are_rate_limited_with_429(client, monkeypatch, one_window):
    monkeypatch.setattr(limits, "KILLS_PER_MINUTE", 2)
    experiment = own_run(client)
    for _ in range(2):  # no consumers run here: the name is refused, but the attempt counts
        assert kill(client, experiment, "c1-123").status_code == 400
    response = kill(client, experiment, "c1-123")
    assert response.status_code == 429
    assert "At most 2 consumer kills a minute" in response.content.decode()


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_a_log_runs_live_view_shows_partitions_lag_and_consumers_and_a_kill_restarts_the_consumer(
    client, rq_workers, redis_conn
):
    from sandbox import delivery

    consumers_running(rq_workers)
    # Four messages now, then one every 10 s: the run stays running while the test kills a consumer.
    experiment = start_via_form(client, "rebalance", jobs=8, arrival_per_s=0.1, kill_consumer_at_s=0, **FAST)
    wait_state(experiment, lambda s: s.counters.get("succeeded", 0) >= 1, 30, "a first message to be committed")
    body = client.get(reverse("sandbox:detail", args=[experiment.pk])).content.decode()
    assert 'id="run-model">partitioned log<' in body
    assert 'id="panel-delivery"' in body
    assert body.count("<tr data-partition=") == 4
    assert 'id="chart-lag-' in body
    assert "messages behind per partition" in body
    assert 'data-counter="max_lag"' in body
    assert 'data-counter="redeliveries"' in body
    names = re.findall(r'<li data-consumer="(c[0-9]+-[0-9]+)">', body)
    assert len(names) == 3

    assert kill(client, experiment, "c9-1").status_code == 400  # well-formed, but no such consumer
    for _ in range(3):  # a consumer whose heartbeat ran late on a loaded machine is refused as "just died"
        victim = delivery.members(redis_conn)[0]
        response = kill(client, experiment, victim, **HX)
        if response.status_code != 400 or "may have just died" not in response.content.decode():
            break
    assert response.status_code == 200, response.content.decode()
    slot, _pid = victim.split("-")
    assert f"Consumer {victim} will be killed" in response.content.decode()

    def restarted():
        names = delivery.members(redis_conn)
        same_slot = [name for name in names if name.startswith(f"{slot}-")]
        return victim not in names and same_slot and same_slot[0] != victim

    wait_for(restarted, 30, message=f"the pool to restart consumer {victim} with a new pid")
    events = live.read(experiment.pk, events=100).events
    assert any(e["kind"] == "consumer_kill_requested" and victim in e["detail"] for e in events)
    experiments.experiment_stop(experiment)
    wait_finished(experiment, 30)


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_a_stream_runs_live_view_charts_the_unacknowledged_messages(client, rq_workers):
    consumers_running(rq_workers)
    # Two 1.5 s charges 4 s apart against a 1 s visibility timeout: each is claimed again while held. (A second
    # apart, the second message and the first one's claim would need three consumers at once: more than a
    # visitor's fair share of the pool's three, which keeps one for the next visitor.)
    experiment = start_via_form(client, "visibility-timeout", jobs=2, arrival_per_s=0.25)
    state = wait_finished(experiment, 60)
    assert state.counters["duplicates_delivered"] == 2
    body = client.get(reverse("sandbox:detail", args=[experiment.pk])).content.decode()
    assert "The stream and its consumers" in body
    assert f'id="chart-lag-{experiment.pk}-t"' in body
    assert "messages published and not yet acknowledged" in body
    peak = int(re.search(r"Peaks: stream (\d+)\.", body).group(1))
    assert 1 <= peak <= 2  # two messages published; each is unacknowledged until its first delivery acks


@pytest.mark.django_db
def test_a_second_model_needs_a_known_model_other_than_the_runs_own(client):
    url = reverse("sandbox:start_models")
    assert client.post(url, {**form_data("ordering"), "vs_model": "kafka"}).status_code == 400
    same = client.post(url, {**form_data("ordering"), "vs_model": "rq"})
    assert same.status_code == 400
    assert "Pick a second model other than this run" in same.content.decode()
    other = Experiment.objects.create(
        anon_id="someone-else", preset="ordering", params=PRESETS["ordering"].parameters(), seed=1
    )
    visitor(client)
    assert client.post(url, {"source": str(other.pk), "vs_model": "log"}).status_code == 400
    assert client.post(url, {"source": "1e3", "vs_model": "log"}).status_code == 400
    assert not Experiment.objects.exclude(pk=other.pk).exists()


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_one_click_runs_a_preset_on_two_models_and_compare_shows_the_delivery_rows(client, rq_workers):
    consumers_running(rq_workers)
    small = {"jobs": 12, "arrival_per_s": 20.0, "duration_ms": 50, "duration_spread_ms": 0}
    response = client.post(
        reverse("sandbox:start_models"), {**form_data("ordering", seed="11", **small), "vs_model": "log"}
    )
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("sandbox:compare"))
    rq_run, log_run = Experiment.objects.order_by("pk")
    assert (rq_run.params["model"], log_run.params["model"]) == ("rq", "log")
    assert rq_run.seed == log_run.seed == 11
    assert {k: v for k, v in rq_run.params.items() if k != "model"} == {
        k: v for k, v in log_run.params.items() if k != "model"
    }
    assert response["Location"].endswith(f"?a={rq_run.pk}&b={log_run.pk}")
    wait_finished(rq_run, 60)
    wait_finished(log_run, 60)

    page = client.get(response["Location"])
    assert page.status_code == 200
    rows = {row["key"]: row for row in page.context["outcomes"]}
    assert {"duplicates_delivered", "redeliveries", "order_violations", "max_lag", "drain_s", "attempts"} <= set(rows)
    assert rows["order_violations"]["b"] == 0
    assert rows["max_lag"]["b"] >= 1
    assert rows["drain_s"]["a"]
    assert rows["drain_s"]["b"]
    body = page.content.decode()
    assert 'data-outcome="order_violations"' in body
    assert f'id="lag-{log_run.pk}"' in body
    assert f'id="lag-{rq_run.pk}"' in body
    assert "Lag per partition, on one scale" in body

    # From a run's page: that run and one new run on the other model, same seed and parameters.
    again = client.post(reverse("sandbox:start_models"), {"source": str(log_run.pk), "vs_model": "stream"})
    assert again.status_code == 302
    stream_run = Experiment.objects.order_by("pk").last()
    assert again["Location"].endswith(f"?a={log_run.pk}&b={stream_run.pk}")
    assert stream_run.params == {**log_run.params, "model": "stream"}
    assert stream_run.seed == log_run.seed
    wait_finished(stream_run, 60)


def test_lag_holds_each_sample_until_the_next_and_bins_keep_the_peak():
    buckets = {"lag0": {102: 3, 105: 1}, "lag1": {100: 2, 101: 0}}
    xs, lines, bin_s = lag_series(buckets, 2, origin=100, seconds=8)
    assert (xs, bin_s) == (list(range(8)), 1)
    assert lines[0] == [0, 0, 3, 3, 3, 1, 1, 1]
    assert lines[1] == [2, 0, 0, 0, 0, 0, 0, 0]
    xs, lines, bin_s = lag_series({"lag0": {100: 9, 101: 0}}, 1, origin=100, seconds=MAX_POINTS * 2)
    assert bin_s == 2
    assert lines[0][:2] == [9, 0]  # the 1-second spike survives the 2-second slot
    assert depth_samples({"arr": {10: 5, 12: 1}, "start": {10: 2, 11: 3}}) == {10: 3, 11: 0, 12: 1}


def test_delivery_events_read_as_words():
    from sandbox.liveview import readmodel

    state = live.LiveState(1, exists=True, t0=100.0, events=[
        {"id": "1-0", "t": "101", "kind": "order_violation", "job": "6", "detail": "customer 2: event 2 applied after a later one"},
        {"id": "2-0", "t": "102", "kind": "rebalanced", "job": "", "detail": "partition 1 moved from c1-5 to c2-6"},
        {"id": "3-0", "t": "103", "kind": "consumer_killed", "job": "4", "detail": "c1-5 gets SIGKILL"},
    ])  # fmt: skip
    rows = readmodel.events(state)
    assert [(r["label"], r["pill"]) for r in rows] == [
        ("out of order", "err"), ("partition moved", "warn"), ("consumer killed", "err"),
    ]  # fmt: skip


# ---------------------------------------------------------------- expired, Redis down


@pytest.mark.django_db
def test_expired_experiment_shows_its_stored_summary(client):
    owner = visitor(client)
    summary = {name: 0 for name in live.COUNTERS} | {"requested": 5, "succeeded": 5}
    experiment = Experiment.objects.create(
        anon_id=owner.anon_id, preset="happy", params=PRESETS["happy"].parameters(), seed=1,
        status=Experiment.Status.FINISHED, summary=summary,
    )  # fmt: skip
    response = client.get(reverse("sandbox:detail", args=[experiment.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="expired-notice"' in body
    assert "final summary" in body
    assert 'data-counter="succeeded"><div class="n">5<' in body
    assert 'hx-trigger="every 1s"' not in body


@pytest.mark.django_db
def test_expired_experiment_without_summary_says_so(client):
    owner = visitor(client)
    experiment = Experiment.objects.create(
        anon_id=owner.anon_id, preset="happy", params=PRESETS["happy"].parameters(), seed=1
    )
    response = client.get(reverse("sandbox:detail", args=[experiment.pk]))
    assert response.status_code == 200
    assert "No final summary was stored" in response.content.decode()
    assert client.get(reverse("sandbox:live", args=[experiment.pk]), **HX).status_code == 286


@pytest.mark.workers
@pytest.mark.django_db
def test_lab_pages_answer_503_with_the_banner_while_redis_is_down(client, redis_control, rq_workers):
    owner = visitor(client)
    experiment = Experiment.objects.create(
        anon_id=owner.anon_id, preset="happy", params=PRESETS["happy"].parameters(), seed=1
    )
    redis_control.stop()
    try:
        for url in [reverse("sandbox:home"), reverse("sandbox:detail", args=[experiment.pk])]:
            response = client.get(url)
            assert response.status_code == 503
            assert 'id="redis-banner"' in response.content.decode()
        poll = client.get(reverse("sandbox:live", args=[experiment.pk]), **HX)
        assert poll.status_code == 503
        assert poll.content.decode().lstrip().startswith('<div class="banner banner-error"')
        start = client.post(reverse("sandbox:start"), form_data("happy"))
        assert start.status_code == 503
        assert client.get(reverse("topics:topic_list")).status_code == 200
    finally:
        redis_control.start()
    wait_for(lambda: client.get(reverse("sandbox:home")).status_code == 200, 10, message="the lab to recover")


@pytest.mark.django_db
def test_too_many_redrives_answer_429_with_the_message(client, one_window):
    owner = visitor(client)
    experiment = Experiment.objects.create(
        anon_id=owner.anon_id, preset="poison", params=PRESETS["poison"].parameters(), seed=1
    )
    url = reverse("sandbox:redrive", args=[experiment.pk])
    for _ in range(limits.REDRIVES_PER_MINUTE):
        assert client.post(url, {"job": "1"}).status_code == 302
    response = client.post(url, {"job": "1"})
    assert response.status_code == 429
    assert "redrives a minute" in response.content.decode()
    fragment = client.post(url, {"job": "1"}, **HX)
    assert fragment.status_code == 429
    assert 'id="lab-flash" role="status" class="msg msg-error" hx-swap-oob="morph"' in fragment.content.decode()


# ---------------------------------------------------------------- chart and explanation helpers


def test_depth_and_in_flight_are_derived_from_cumulative_buckets():
    buckets = {"arr": {100: 5, 101: 2}, "start": {100: 2, 101: 3, 102: 2}, "end": {101: 2, 102: 3, 103: 2}}
    series = series_from_buckets(buckets, now=200)
    assert series.seconds[:4] == [0, 1, 2, 3]
    assert series.depth[:4] == [3, 2, 0, 0]
    assert series.in_flight[:4] == [2, 3, 2, 0]
    assert series.peak_depth == 3


def test_future_arrivals_do_not_stretch_the_axis_past_now():
    series = series_from_buckets({"arr": {100: 1, 160: 1}, "start": {100: 1}}, now=110)
    assert series.seconds[-1] == 10


def test_retry_histogram_is_relative_to_the_start_and_fills_gaps():
    seconds, values, bin_s = retry_histogram({105: 3, 107: 1}, 100.4)
    assert bin_s == 1
    assert seconds == list(range(8))
    assert values == [0, 0, 0, 0, 0, 3, 0, 1]


def test_charts_are_accessible_images_with_a_title_and_axis_labels():
    svg = charts.bar_chart(
        name="t",
        title="Retries <due>",
        desc="d",
        xs=[0, 1],
        bars=[("due", "retry", [1, 4])],
        x_label="sec",
        y_label="n",
    )
    assert svg.startswith('<svg class="chart"')
    assert 'role="img"' in svg
    assert '<title id="chart-t-t">Retries &lt;due&gt;</title>' in svg
    assert ">sec</text>" in svg
    assert ">n</text>" in svg


def test_explanation_predicts_dlq_share_rejections_and_littles_law():
    params = {
        **PRESETS["slow-consumer"].parameters(),
        "jobs": 300,
        "queue_cap": 200,
        "failure_rate": 0.5,
        "max_retries": 1,
    }
    counters = {"requested": 300, "rejected": 100, "dead_lettered": 50, "succeeded": 150}
    items = {item["topic"]: item for item in explain(params, counters, peak_depth=80, drain_s=25)}
    assert "300 − 200 = 100" in items["Load shedding"]["expected"]
    assert "0.5^(1+1) = 0.25" in items["Dead-letter queue"]["expected"]
    assert "about 50 of 200 jobs" in items["Dead-letter queue"]["expected"]
    assert "L = λW = 4.0" in items["Little's law"]["expected"]
    assert "capacity = worker slots / W = 2 / 0.4 = 5.0/s" in items["Little's law"]["expected"]
    assert items["Little's law"]["observed"] == "peak queue depth 80"
    assert "about 25 s" in items["Time to drain"]["observed"]
    assert items["Accounting"]["observed"].endswith("✓")


def test_swimlanes_draw_attempts_waits_and_backoff_windows_on_a_time_axis():
    t0 = 1000.0
    rows = [
        {
            "job": 1,
            "ceilings": [2, 4],
            "marks": [
                {"n": 1, "r": "error", "s": t0, "t": t0 + 0.5, "e": "TransientError: 503", "next": t0 + 1.5},
                {"n": 2, "r": "ok", "s": t0 + 1.6, "t": t0 + 2.0, "e": "double_charge"},
            ],
        },
        {"job": 2, "ceilings": [2, 4], "marks": [], "running_since": t0 + 1.0},
    ]
    svg = charts.swimlanes(rows=rows, t0=t0, now=t0 + 3, title="Lanes <t>", desc="d")
    assert svg.startswith('<div class="lanes-wrap"><svg class="lane-labels"')  # the phone's held label column
    assert '<svg class="chart lanes"' in svg
    assert "Lanes &lt;t&gt;" in svg
    assert svg.count('class="lane-bar mark-error"') == 1
    assert svg.count('class="lane-bar mark-double"') == 1  # a double charge is drawn red, not "ok"
    assert "retry 1 drawn from 0–2 s after the failure" in svg
    assert svg.count('class="lane-wait"') == 1
    assert 'class="lane-bar mark-running"' in svg
    assert ">job 2</text>" in svg
