"""The learning loop around a run (issue #22): predict from the givens, score against the first finish,
one lesson at the top, a time axis that does not move, and a next step that teaches."""

import re
from html import unescape

import pytest
from django.urls import reverse

from prepsite.charts import sub_lanes, swimlanes
from sandbox import delivery
from sandbox.delivery.consumed import partition_of
from sandbox.engine import experiments, live
from sandbox.engine.lessons import LESSONS, lesson_for
from sandbox.engine.outcome import slo_verdict
from sandbox.engine.presets import PRESETS
from sandbox.liveview import predictions
from sandbox.liveview.readmodel import preset_links
from sandbox.models import Experiment
from sandbox.params import ExperimentForm
from tests.sandbox.helpers import anonymous_visitor

visitor = anonymous_visitor
HX = {"HTTP_HX_REQUEST": "true"}
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\d)")
WORDS = {
    "zero": 0, "none": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "dozen": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100,
}  # fmt: skip
FAST = {"duration_ms": 50, "duration_spread_ms": 0}


def numbers_in(text: str) -> set[float]:
    """Every number a reader takes from the text: digits (12, 0.4, 1.5) and number words (twelve, no)."""
    found = {float(n) for n in NUMBER.findall(text)}
    found |= {float(WORDS[w]) for w in re.findall(r"[a-z]+", text.lower()) if w in WORDS}
    return found


def card_text(body: str, name: str) -> str:
    match = re.search(rf'<article class="card preset-card[^"]*" id="preset-{name}">(.*?)</article>', body, re.S)
    assert match, name
    return unescape(re.sub(r"<[^>]+>", " ", match.group(1)))


def form_data(name: str, **overrides) -> dict:
    data = {**PRESETS[name].parameters(), "preset": name, "seed": "7", "prediction": "", **overrides}
    return {key: str(value) for key, value in data.items()}


def start_via_form(client, name: str, **overrides) -> Experiment:
    response = client.post(reverse("sandbox:start"), form_data(name, **overrides))
    assert response.status_code == 302, response.content[:2000]
    return Experiment.objects.get(pk=int(response["Location"].rstrip("/").split("/")[-1]))


def page(client, experiment: Experiment, **params) -> str:
    response = client.get(reverse("sandbox:detail", args=[experiment.pk]), params)
    assert response.status_code == 200
    return response.content.decode()


def score_cell(body: str, key: str) -> str:
    row = re.search(rf'<tr data-prediction="{key}">(.*?)</tr>', body, re.S)
    assert row, key
    return unescape(re.sub(r"<[^>]+>", " ", row.group(1)))


# ---------------------------------------------------------------- presets as lessons


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_has_a_setup_an_explanation_and_an_answer_for_every_prediction(name):
    preset = PRESETS[name]
    assert preset.setup
    assert len(preset.setup.split()) <= 40, "the setup is one line of givens"
    assert preset.explanation
    assert preset.setup not in preset.explanation
    asked = {p.key for p in predictions.fields_for(name)}
    answers = lesson_for(name).answers
    assert asked <= set(answers), f"{name}: typical answers missing for {asked - set(answers)} (sandbox.engine.lessons)"


@pytest.mark.django_db
@pytest.mark.parametrize("name", PRESETS)
def test_preset_card_text_contains_none_of_the_numbers_its_prediction_asks_for(client, queueing, name):
    body = client.get(reverse("sandbox:home")).content.decode()
    text = card_text(body, name)
    assert PRESETS[name].setup in text
    answers = lesson_for(name).answers  # a missing answer fails the test above, by name
    asked = {float(answers[p.key]) for p in predictions.fields_for(name) if p.key in answers}
    assert not numbers_in(text) & asked, f"{name}'s card gives away {numbers_in(text) & asked}: {text!r}"
    assert PRESETS[name].explanation not in body


def test_every_lesson_belongs_to_a_preset():
    assert set(LESSONS) <= set(PRESETS)


def test_the_card_check_finds_digits_and_words():
    assert numbers_in("retried 1 + 3 times, 0.4^5 ≈ 1%, twelve jobs, none charged twice") >= {1, 3, 0.4, 12, 0}
    assert 4.0 not in numbers_in("a 400 ms job, 1.45 s")


@pytest.mark.parametrize("name", LESSONS)
def test_each_try_next_changes_one_knob_and_fits_the_lab(name):
    preset, variant = PRESETS[name], LESSONS[name].try_next
    assert variant is not None
    assert len(variant.params) == 1
    ((knob, value),) = variant.params.items()
    assert preset.parameters()[knob] != value
    form = ExperimentForm(data=form_data(name, **variant.params))
    assert form.is_valid(), form.errors


@pytest.mark.django_db
def test_every_preset_links_a_drill_and_a_study_section_that_has_its_heading(client, queueing):
    links = preset_links(PRESETS)
    for name, preset in PRESETS.items():
        assert links[name]["drill_url"], f"{name} has no drill (a question's `preset:` front matter)"
        section = client.get(links[name]["study_url"]).content.decode()
        assert f'id="{preset.anchor}"' in section, f"{name}: no heading #{preset.anchor} in {preset.section}"


# ---------------------------------------------------------------- choosing a preset


@pytest.mark.django_db
def test_choosing_a_preset_focuses_the_first_prediction_and_shows_its_givens(client, queueing):
    body = client.get(reverse("sandbox:home"), {"preset": "poison"}).content.decode()
    first = re.search(r"<input[^>]*name=\"predict-dead_lettered\"[^>]*>", body).group(0)
    assert "autofocus" in first
    assert body.count("autofocus") == 1
    assert PRESETS["poison"].setup in body
    givens = re.search(r'<p class="small givens" id="givens">(.*?)</p>', body, re.S).group(1)
    assert "<strong>12</strong>" in givens
    assert "<strong>3</strong>" in givens
    browsing = client.get(reverse("sandbox:home"), {"preset": "poison", "stay": "1"}, **HX).content.decode()
    assert "autofocus" not in browsing  # moving through the picker keeps focus on the picker
    assert "autofocus" not in client.get(reverse("sandbox:home")).content.decode()


# ---------------------------------------------------------------- honest scoring


@pytest.mark.django_db
def test_a_poison_run_predicted_exactly_stays_spot_on_after_fix_and_redrive(client, queueing, lab_engine):
    visitor(client)
    experiment = start_via_form(
        client, "poison", **{"predict-dead_lettered": 12, "predict-attempts_per_job": 4}, **FAST
    )
    lab_engine.finish(experiment)
    body = page(client, experiment)
    assert "spot on" in score_cell(body, "dead_lettered")
    assert "spot on" in score_cell(body, "attempts_per_job")
    assert 'id="after-label"' not in body
    assert "All 12 of 12 jobs ended in the DLQ after 4 attempts each" in unescape(body)
    assert PRESETS["poison"].explanation in unescape(body)

    client.post(reverse("sandbox:fix_consumer", args=[experiment.pk]))
    assert client.post(reverse("sandbox:redrive", args=[experiment.pk])).status_code == 302
    lab_engine.run_until(lambda: live.read(experiment.pk).finished and live.read(experiment.pk).counters["redriven"])
    experiment.refresh_from_db()
    body = page(client, experiment)
    assert "spot on" in score_cell(body, "dead_lettered")
    assert "12 jobs" in score_cell(body, "dead_lettered")
    assert "spot on" in score_cell(body, "attempts_per_job")
    after = re.search(r'<tbody class="after-rows">(.*?)</tbody>', body, re.S).group(1)
    assert "After your redrive of 12 jobs" in after
    dlq_after = re.search(r'<tr data-after="dead_lettered">(.*?)</tr>', after, re.S).group(1)
    assert "0 jobs" in dlq_after  # unique jobs in the DLQ now
    # No count of 13 anywhere above the outcome (the run's seed and start time are no counts: at 10:13 they held "13")
    above = re.sub(r'<p class="small muted run-meta">.*?</p>', "", body.split('id="panel-outcome"')[0], flags=re.S)
    assert not re.search(r"(?<!\d)13(?!\d)", unescape(re.sub(r"<[^>]+>", " ", above)))
    history = client.get(reverse("sandbox:history")).content.decode()
    row = re.search(rf'<a href="/sandbox/experiments/{experiment.pk}/">.*?</tr>', history, re.S).group(0)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[3:5] == ["0", "12"], cells  # succeeded, DLQ as it first finished


@pytest.mark.django_db
def test_a_stopped_run_is_not_scored_and_its_slo_is_not_met(client, queueing, lab_engine):
    visitor(client)
    experiment = start_via_form(client, "poison", **{"predict-dead_lettered": 12}, jobs=4, **FAST)
    client.post(reverse("sandbox:stop", args=[experiment.pk]))
    lab_engine.finish(experiment)
    experiment.refresh_from_db()
    assert not experiment.scored
    body = unescape(page(client, experiment))
    assert "not scored" in score_cell(body, "dead_lettered")
    assert "off (" not in body
    assert "spot on" not in body
    assert "Stopped early: not scored. 0 of 4 jobs had succeeded and 4 were stopped." in body
    assert "Try next" not in body  # a stopped run has no lesson to follow up
    assert 'id="stop-experiment"' not in body  # nothing to stop, and no dead button in its place
    assert "the latency SLO was met" not in body


def test_an_slo_needs_a_success_to_be_met():
    assert slo_verdict({}, 120.0, 3)["met"]
    assert not slo_verdict({}, 120.0, 0)["met"]
    assert slo_verdict({}, 120.0, 0)["no_successes"]
    assert not slo_verdict({}, 20_000.0, 3)["met"]


# ---------------------------------------------------------------- one lesson per screen


@pytest.mark.django_db
def test_the_lesson_card_comes_first_with_the_presets_figures_and_hides_what_does_not_apply(
    client, queueing, lab_engine
):
    visitor(client)
    experiment = start_via_form(client, "poison", jobs=4, **FAST)
    lab_engine.finish(experiment)
    body = page(client, experiment)
    sections = re.findall(r'<section id="(panel-[a-z]+)"', body)
    assert sections[0] == "panel-lesson"
    lesson = body[body.index('id="panel-lesson"') : body.index('id="panel-why"')]
    figures = re.findall(r'data-figure="([a-z_]+)"', lesson)
    assert figures == list(LESSONS["poison"].counters)
    assert 3 <= len(figures) <= 4
    assert 'id="lanes-figure"' in lesson  # poison's chart, drawn once on the page
    assert body.count('id="lanes-figure"') == 1
    assert 'data-counter="order_violations"' not in body  # not poison's lesson
    assert 'id="try-next"' in lesson
    assert "Try next: no retries" in lesson
    assert '<details class="all-counters"' in body


@pytest.mark.django_db
def test_the_why_question_checks_an_answer_and_refuses_nonsense(client, queueing, lab_engine):
    visitor(client)
    experiment = start_via_form(client, "poison", jobs=2, **FAST)
    lab_engine.finish(experiment)
    body = page(client, experiment)
    assert 'name="why"' in body
    assert 'id="explanation"' not in body
    right = LESSONS["poison"].why.answer
    assert "Right." in page(client, experiment, why=right)
    wrong = unescape(page(client, experiment, why=(right + 1) % 3))
    assert "Not quite" in wrong
    assert PRESETS["poison"].explanation in wrong
    fragment = client.get(reverse("sandbox:detail", args=[experiment.pk]), {"why": right}, **HX).content.decode()
    assert fragment.lstrip().startswith('<div id="why">')
    assert "<html" not in fragment
    for bad in ("9", "abc", "-1", "²"):
        assert client.get(reverse("sandbox:detail", args=[experiment.pk]), {"why": bad}).status_code == 400


# ---------------------------------------------------------------- time axes


def axis_labels(body: str) -> list[str]:
    return re.findall(r'<text class="tick" [^>]*text-anchor="middle">([^<]*)</text>', body)


@pytest.mark.django_db
def test_a_finished_run_viewed_five_minutes_later_has_the_same_axis(client, queueing, lab_engine):
    visitor(client)
    experiment = start_via_form(client, "retry-storm", jobs=6)
    lab_engine.finish(experiment)
    first = page(client, experiment)
    lanes = re.search(r'<svg class="chart lanes".*?</svg>', first, re.S).group(0)
    lab_engine.advance(300)
    later = page(client, experiment)
    assert re.search(r'<svg class="chart lanes".*?</svg>', later, re.S).group(0) == lanes
    assert axis_labels(later) == axis_labels(first)
    ends = {
        labels[-1]
        for labels in re.findall(r'(?s)<svg class="chart[^"]*".*?</svg>', later)
        for labels in [axis_labels(labels)]
        if labels
    }
    assert len(ends) == 1, f"every chart of the run ends its axis at the same second: {ends}"
    assert "seconds since the first arrival" not in later


# ---------------------------------------------------------------- next steps


@pytest.mark.django_db
def test_try_next_starts_the_one_knob_variant_with_the_same_seed_and_offers_the_comparison(
    client, queueing, lab_engine
):
    visitor(client)
    source = start_via_form(client, "retry-storm", jobs=6)
    lab_engine.finish(source)
    response = client.post(reverse("sandbox:try_next", args=[source.pk]))
    assert response.status_code == 302
    variant = Experiment.objects.exclude(pk=source.pk).get()
    assert variant.rerun_of == source
    assert variant.seed == source.seed
    differs = {k for k in source.params if source.params[k] != variant.params[k]}
    assert differs == {"jitter"}
    assert variant.params["jitter"] == "full"
    lab_engine.finish(variant)
    body = page(client, variant)
    assert f'?a={source.pk}&amp;b={variant.pk}" id="compare-with">Compare with #{source.pk}' in body


@pytest.mark.django_db
def test_try_next_of_someone_elses_run_is_a_404(client, queueing, lab_engine):
    other = experiments.experiment_start(
        owner=anonymous_visitor(client), preset="happy", params=PRESETS["happy"].parameters(), seed=1
    )
    client.cookies.clear()
    visitor(client)
    assert client.post(reverse("sandbox:try_next", args=[other.pk])).status_code == 404
    assert client.get(reverse("sandbox:try_next", args=[other.pk])).status_code == 405


@pytest.mark.django_db
def test_run_it_again_carries_the_predictions_and_links_the_two_runs(client, queueing, lab_engine):
    visitor(client)
    source = start_via_form(
        client, "poison", **{"predict-dead_lettered": 7, "predict-attempts_per_job": 2.5}, jobs=2, **FAST
    )
    lab_engine.finish(source)
    form = client.get(reverse("sandbox:home"), {"rerun": source.pk}).content.decode()
    assert re.search(r'name="predict-dead_lettered" value="7"', form)
    assert re.search(r'name="predict-attempts_per_job" value="2.5"', form)
    assert f'name="rerun_of" value="{source.pk}"' in form
    again = start_via_form(client, "poison", rerun_of=source.pk, jobs=2, max_retries=1, **FAST)
    assert again.rerun_of == source
    lab_engine.finish(again)
    compare = client.get(reverse("sandbox:compare"), {"a": source.pk, "b": again.pk}).content.decode()
    assert 'id="compare-predictions"' in compare
    params = compare[compare.index('id="h-params"') :]
    assert "max_retries" in params.split("<details")[0]  # what differs is shown
    assert "backoff_cap_s" not in params.split("<details")[0]  # the rest is folded


# ---------------------------------------------------------------- text and run never disagree silently


@pytest.mark.django_db
def test_a_run_far_from_the_presets_typical_result_says_so(client, queueing, lab_engine):
    visitor(client)
    typical = start_via_form(client, "poison", **FAST)
    lab_engine.finish(typical)
    assert 'id="untypical"' not in page(client, typical)
    smaller = start_via_form(client, "poison", jobs=3, **FAST)  # the preset's text is about 12 jobs
    lab_engine.finish(smaller)
    note = re.search(r'<p class="small msg msg-warning" id="untypical">(.*?)</p>', page(client, smaller), re.S)
    assert note
    assert "jobs in the dlq at the end was 3 jobs" in unescape(note.group(1)).lower()
    assert "usually gives about 12" in note.group(1)


# ---------------------------------------------------------------- the DLQ as a dashboard groups it


@pytest.mark.django_db
def test_dead_letters_are_grouped_by_error_class_and_a_group_is_redriven_in_bulk(client, queueing, lab_engine):
    visitor(client)
    experiment = start_via_form(client, "flaky", jobs=10, failure_rate=1.0, poison_rate=0.5, max_retries=0, **FAST)
    state = lab_engine.finish(experiment)
    assert len(state.dlq) == 10
    body = page(client, experiment)
    groups = dict(re.findall(r'<tr data-group="([^"]+)">.*?<td data-label="jobs"><strong>(\d+)</strong>', body, re.S))
    assert "PoisonMessage" in groups
    assert len(groups) == 2
    assert sum(int(n) for n in groups.values()) == 10
    poison = int(groups["PoisonMessage"])
    response = client.post(reverse("sandbox:redrive", args=[experiment.pk]), {"group": "PoisonMessage"})
    assert response.status_code == 302
    assert live.read(experiment.pk).counters["redriven"] == poison
    missing = client.post(reverse("sandbox:discard", args=[experiment.pk]), {"group": "NoSuchError"})
    assert missing.status_code == 400
    assert b"No dead letters have that error" in missing.content


# ---------------------------------------------------------------- overlapping deliveries


def test_overlapping_deliveries_of_one_message_get_their_own_sub_lanes():
    first = {"n": 1, "r": "ok", "s": 100.0, "t": 101.5}
    claimed = {"n": 2, "r": "ok", "e": "duplicate_suppressed", "s": 101.0, "t": 102.5}  # starts before first ends
    later = {"n": 1, "r": "ok", "s": 104.0, "t": 105.5}
    assert sub_lanes({"marks": [first, claimed]}, 110.0) == ([0, 1], 0, 2)
    assert sub_lanes({"marks": [first, later]}, 110.0) == ([0, 0], 0, 1)
    svg = swimlanes(rows=[{"job": 1, "marks": [first, claimed]}], t0=100.0, now=110.0, title="t", desc="d", live=False)
    ys = re.findall(r'<rect class="lane-bar[^"]*" x="[^"]*" y="([^"]+)"', svg)
    assert len(set(ys)) == 2, "the second delivery is drawn under the first, not on top of it"


@pytest.mark.django_db
def test_beginners_pick_predictions_from_choices_that_include_the_typical_result(client, queueing, lab_engine):
    visitor(client)
    body = client.get(reverse("sandbox:home"), {"preset": "poison", "mode": "choices"}).content.decode()
    dlq = re.findall(r'<input type="radio" name="predict-dead_lettered" value="([^"]+)"', body)
    assert dlq == ["3", "6", "12", "24"]
    attempts = re.findall(r'<input type="radio" name="predict-attempts_per_job" value="([^"]+)"', body)
    assert [float(v) for v in attempts] == [1, 2, 4, 8]
    assert 'id="mode-numbers"' in body
    experiment = start_via_form(client, "poison", **{"predict-dead_lettered": "12"}, jobs=12, **FAST)
    assert experiment.predicted == {"dead_lettered": 12}
    assert 'id="mode-choices"' in client.get(reverse("sandbox:home"), {"preset": "poison"}).content.decode()


@pytest.mark.django_db
def test_a_late_redrive_is_its_own_segment_after_an_axis_break(client, queueing, lab_engine):
    visitor(client)
    experiment = start_via_form(client, "poison", jobs=2, **FAST)
    lab_engine.finish(experiment)
    before = page(client, experiment)
    assert 'class="lane-break"' not in before
    lab_engine.advance(400)  # the learner reads, thinks, then fixes and redrives
    client.post(reverse("sandbox:fix_consumer", args=[experiment.pk]))
    client.post(reverse("sandbox:redrive", args=[experiment.pk]))
    lab_engine.run_until(lambda: live.read(experiment.pk).finished and live.read(experiment.pk).counters["redriven"])
    body = page(client, experiment)
    lanes = re.search(r'<svg class="chart lanes".*?</svg>', body, re.S).group(0)
    assert 'class="lane-break"' in lanes
    labels = [float(t.rstrip("s")) for t in axis_labels(lanes)]
    assert labels[-1] >= 400  # real seconds on the far side of the break
    assert labels[1] < 100  # but the idle stretch takes no room: a quarter of the axis is still the first pass
    assert 'id="axis-gap"' in body
    bars = [int(s) for s in re.findall(r"<title>(\d+)s: \d+ (?:succeeded|failed)</title>", body)]
    assert bars
    assert not [s for s in bars if 30 < s < 390], "the charts leave the idle seconds out"


def test_log_lanes_are_grouped_by_partition_and_queue_lanes_are_not():
    params = {**PRESETS["head-of-line"].parameters()}
    log, queue = delivery.model_for(params), delivery.model_for({**params, "model": "rq"})
    assert [log.lane_group(job, params) for job in range(1, 9)] == [partition_of(j, params) for j in range(1, 9)]
    assert len({log.lane_group(job, params) for job in range(1, 9)}) == params["partitions"]
    assert queue.lane_group(3, params) is None
    rows = [{"job": j, "group": g, "marks": []} for j, g in ((1, 0), (5, 0), (2, 1), (3, 2))]
    svg = swimlanes(rows=rows, t0=100.0, now=110.0, title="t", desc="d", live=False)
    chart = re.search(r'<svg class="chart lanes".*?</svg>', svg, re.S).group(0)
    assert re.findall(r'class="lane-group-label"[^>]*>(p\d)<', chart) == ["p0", "p1", "p2"]
    labels = re.search(r'<svg class="lane-labels"[^>]*aria-hidden="true">.*?</svg>', svg, re.S).group(0)
    assert re.findall(r">job (\d+)<", labels) == ["1", "5", "2", "3"]  # the column that stays put on a phone
