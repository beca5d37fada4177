import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.drills.conftest import CURVEBALLS, KEY_POINTS, MODEL_ANSWER, make_design_question, make_question
from topics.drills import services
from topics.drills.models import CURVEBALLS_AT_S, PHASES, Card, MockInterview, curveball_offsets_s
from topics.models import Question

pytestmark = pytest.mark.django_db

# Three curveballs interrupt (the fixture's one follow-up, then the topic's first two): 2, 5 and 8 minutes
# into the 10-minute Failure modes phase of a 45-minute mock, at 37:00, 40:00 and 43:00.
FIRST_CURVEBALL_S = CURVEBALLS_AT_S + 2 * 60
ALL_CURVEBALLS_IN_S = CURVEBALLS_AT_S + 8 * 60


@pytest.fixture
def mock(client, question) -> MockInterview:
    response = client.post(reverse("drills:mock_start"), {"question": question.pk})
    mock = MockInterview.objects.get()
    assert response["Location"] == mock.get_absolute_url()
    return mock


def started_ago(mock: MockInterview, seconds: float) -> MockInterview:
    mock.started_at = timezone.now() - timedelta(seconds=seconds)
    mock.save(update_fields=["started_at"])
    return mock


def test_mock_page_shows_phases_budgets_and_curveballs(client, mock):
    started_ago(mock, ALL_CURVEBALLS_IN_S)
    html = client.get(mock.get_absolute_url()).content.decode()
    for title, minutes in [
        ("Requirements", 5),
        ("Estimates", 5),
        ("High-level design", 10),
        ("Deep dive", 15),
        ("Failure modes &amp; wrap-up", 10),
    ]:
        assert title in html
        assert f"{minutes} min" in html
    assert "A deploy just put 10,000 jobs in the DLQ" in html
    assert "SIGKILLed mid-charge" in html
    assert "Traffic tripled in 5 minutes" not in html  # a third topic curveball waits for another mock
    # Each asks for an answer first; its Lab preset is linked once answered (issue #23).
    assert "/sandbox/?preset=" not in html
    assert html.count("Answer first: the Lab preset") == 2
    # Paste, autofill and dictation fire input events, never keyup.
    assert 'hx-trigger="input changed delay:800ms, change"' in html


def test_mock_notes_survive_a_reload(client, mock):
    save = reverse("drills:mock_save", args=[mock.pk])
    response = client.post(save, {"phase": "estimates", "notes": "10k msg/s <peak> & 200 ms"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "Saved at" in response.content.decode()
    response = client.post(save, {"phase": "requirements", "notes": "at-least-once"})  # no-JS Save button
    assert response.status_code == 302
    html = client.get(mock.get_absolute_url()).content.decode()
    assert "10k msg/s &lt;peak&gt; &amp; 200 ms</textarea>" in html
    assert "at-least-once</textarea>" in html


def test_mock_notes_are_bounded(client, mock):
    save = reverse("drills:mock_save", args=[mock.pk])
    response = client.post(save, {"phase": "estimates", "notes": "x" * 20_001}, HTTP_HX_REQUEST="true")
    assert "limited to 20,000 characters" in response.content.decode()
    response = client.post(save, {"phase": "estimates", "notes": "x" * 50_000})
    assert response.status_code == 400
    assert "limited to 20,000 characters" in response.content.decode()
    assert client.post(save, {"phase": "bogus", "notes": "x"}).status_code == 400
    assert MockInterview.objects.get().notes == {}


def test_mock_finish_records_self_assessment_and_exports_markdown(client, mock):
    started_ago(mock, CURVEBALLS_AT_S + 60)
    client.post(reverse("drills:mock_save", args=[mock.pk]), {"phase": "deep_dive", "notes": "DLQ + redrive"})
    response = client.post(reverse("drills:mock_finish", args=[mock.pk]), {"covered": ["0", "2"]})
    assert response.status_code == 302
    mock.refresh_from_db()
    assert mock.finished_at
    assert mock.self_assessment == [0, 2]
    assert "You covered 2 of 4 key points" in client.get(mock.get_absolute_url()).content.decode()
    export = client.get(reverse("drills:mock_export", args=[mock.pk]))
    assert export["Content-Type"].startswith("text/markdown")
    text = export.content.decode()
    assert text.startswith("# Mock interview: ")
    assert "## 4. Deep dive (15 min)\n\n### Your notes\n\nDLQ + redrive" in text
    assert f"## Model answer\n\n{MODEL_ANSWER}" in text  # a concept answer, whole
    assert "2. A deploy just put 10,000 jobs in the DLQ — what now? (Lab preset: `poison`)" in text
    assert "Not reached before you finished (due at 40:00)." in text  # finished at 36:00
    assert "- [x] Bulkheads isolate each dependency" in text
    assert "- [ ] Circuit breaker" in text


def test_mock_finish_rejects_unknown_key_points(client, mock):
    response = client.post(reverse("drills:mock_finish", args=[mock.pk]), {"covered": ["99"]})
    assert response.status_code == 400
    assert MockInterview.objects.get().finished_at is None


def test_another_learners_mock_is_404_on_every_view(mock):
    stranger = Client()
    assert stranger.get(reverse("drills:mock_detail", args=[mock.pk])).status_code == 404
    assert stranger.post(reverse("drills:mock_save", args=[mock.pk]), {"phase": "estimates"}).status_code == 404
    assert stranger.post(reverse("drills:mock_finish", args=[mock.pk]), {}).status_code == 404
    assert stranger.get(reverse("drills:mock_export", args=[mock.pk])).status_code == 404
    assert stranger.get("/drills/mock/999999/").status_code == 404


def test_mock_start_surprise_me_picks_a_question(client):
    make_question("only-one")
    response = client.post(reverse("drills:mock_start"), {"question": ""})
    assert response.status_code == 302
    assert MockInterview.objects.get().question.slug == "only-one"
    assert (
        client.post(reverse("drills:mock_start"), {"question": "abc"}).status_code == 400
    )  # a bad id is a form error, answered 400


def test_htmx_finish_returns_the_finish_fragment(client, mock):
    response = client.post(reverse("drills:mock_finish", args=[mock.pk]), {"covered": ["1"]}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert 'id="finish"' in html
    assert "You covered 1 of 4 key points" in html


def test_autosave_announces_only_the_first_save_of_a_phase_and_failures(client, mock):
    save = reverse("drills:mock_save", args=[mock.pk])
    hx = {"HTTP_HX_REQUEST": "true"}
    first = client.post(save, {"phase": "estimates", "notes": "500 jobs/s"}, **hx).content.decode()
    assert 'id="mock-announcer"' in first
    assert "Notes save as you type." in first
    again = client.post(save, {"phase": "estimates", "notes": "500 jobs/s peak"}, **hx).content.decode()
    assert "Saved at" in again
    assert 'id="mock-announcer"' not in again  # not chatty: the visible status changes, nothing is read out
    failed = client.post(save, {"phase": "estimates", "notes": "x" * 20_001}, **hx).content.decode()
    assert 'id="mock-announcer"' in failed
    assert "Notes not saved" in failed


# Curveballs arrive with their phase -------------------------------------------------------------


def test_curveballs_phase_starts_35_minutes_in():
    assert CURVEBALLS_AT_S == 60 * sum(phase["minutes"] for phase in PHASES[:4]) == 35 * 60


def test_curveballs_are_not_shown_before_their_phase_starts(client, mock):
    html = client.get(mock.get_absolute_url()).content.decode()  # t = 0
    for ball in CURVEBALLS:
        assert ball["text"].replace("'", "&#x27;") not in html
    assert "The payment provider fails 30% of calls" not in html
    assert "3 curveballs, the first at <strong>37:00</strong>" in html
    assert f'data-curveball-next="{FIRST_CURVEBALL_S}" hx-get="{mock.get_absolute_url()}"' in html
    html = client.get(started_ago(mock, FIRST_CURVEBALL_S - 5).get_absolute_url()).content.decode()
    assert "The payment provider fails 30% of calls" not in html
    assert 'role="alertdialog"' not in html


def test_curveballs_interrupt_spread_through_their_phase_in_every_format():
    assert curveball_offsets_s(600, 4) == [120, 240, 360, 480]
    assert curveball_offsets_s(300, 4) == [60, 120, 180, 240]
    assert curveball_offsets_s(480, 4) == [120, 180, 300, 360]
    assert curveball_offsets_s(600, 1) == [300]
    assert curveball_offsets_s(40, 3) == [10, 20, 30]
    assert curveball_offsets_s(600, 0) == []


def test_each_curveball_interrupts_at_its_own_time_and_a_reload_shows_it_inline(client, mock):
    html = client.get(started_ago(mock, FIRST_CURVEBALL_S + 1).get_absolute_url()).content.decode()
    assert "The payment provider fails 30% of calls. Retry or pause?" in html  # the prompt's own follow-up
    assert "A deploy just put 10,000 jobs in the DLQ" not in html  # the next one comes at 40:00
    assert "2 more curveballs to come: the next interrupts at <strong>40:00</strong>" in html
    # The reload after its time shows it inline and as the interruption, which it records as arrived now.
    assert re.search(r'role="alertdialog"[^>]*aria-labelledby="popup-title"', html)
    assert "Interrupted at 37:01, not acknowledged yet" in html
    assert "curveballs are in" not in html
    assert "interviewer interrupts: “" not in html
    mock.refresh_from_db()
    assert mock.curveball_log["curveball-0"]["arrived_s"] == FIRST_CURVEBALL_S + 1
    assert list(mock.curveball_log) == ["curveball-0"]


def test_the_timer_fetches_a_due_curveball_as_a_fragment_announced_once(client, mock):
    hx = {"HTTP_HX_REQUEST": "true"}
    early = client.get(started_ago(mock, FIRST_CURVEBALL_S - 30).get_absolute_url(), **hx).content.decode()
    assert "<html" not in early
    assert 'id="curveballs"' in early
    assert "data-curveball-next" in early
    assert "The payment provider fails" not in early
    assert "curveball-announcer" not in early
    due = client.get(started_ago(mock, FIRST_CURVEBALL_S).get_absolute_url(), **hx).content.decode()
    assert "<html" not in due
    assert "The payment provider fails 30% of calls" in due
    assert re.search(
        r'<p id="curveball-announcer"[^>]*hx-swap-oob="innerHTML">The interviewer interrupts: “The payment', due
    )
    assert re.search(
        r'<div id="curveball-popup"[^>]*hx-swap-oob="true">\s*<div class="curveball-popup" role="alertdialog"', due
    )
    again = client.get(mock.get_absolute_url(), **hx).content.decode()
    assert "curveball-announcer" not in again  # already arrived: not said twice


def test_acknowledging_a_curveball_is_recorded_and_ends_the_interruption(client, mock):
    started_ago(mock, ALL_CURVEBALLS_IN_S)
    client.get(mock.get_absolute_url())  # all four arrive
    url = reverse("drills:mock_curveball", args=[mock.pk])
    response = client.post(url, {"key": "curveball-0", "then": "answer"})  # no JavaScript: POST and redirect
    assert response["Location"] == f"{mock.get_absolute_url()}#notes-curveball-0"
    fragment = client.post(url, {"key": "curveball-1", "then": "later"}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment
    assert 'data-curveball-popup="curveball-2"' in fragment  # the next unacknowledged one interrupts in turn
    mock.refresh_from_db()
    assert mock.curveball_log["curveball-0"]["acknowledged_s"] >= ALL_CURVEBALLS_IN_S
    assert "acknowledged_at" in mock.curveball_log["curveball-1"]
    assert "acknowledged_s" not in mock.curveball_log["curveball-2"]
    # Answering one acknowledges it too.
    client.post(reverse("drills:mock_save", args=[mock.pk]), {"phase": "curveball-2", "notes": "Roll back first."})
    html = client.get(mock.get_absolute_url()).content.decode()
    assert 'role="alertdialog"' not in html
    assert html.count(", acknowledged at ") == 3
    assert client.post(url, {"key": "bogus"}).status_code == 400
    assert Client().post(url, {"key": "curveball-0"}).status_code == 404  # only its own visitor


def test_the_export_says_when_each_curveball_arrived_and_was_acknowledged(client, mock):
    started_ago(mock, FIRST_CURVEBALL_S + 10)
    client.get(mock.get_absolute_url())
    started_ago(mock, FIRST_CURVEBALL_S + 25)
    client.post(reverse("drills:mock_curveball", args=[mock.pk]), {"key": "curveball-0", "then": "later"})
    client.post(reverse("drills:mock_finish", args=[mock.pk]), {"covered": []})
    text = client.get(reverse("drills:mock_export", args=[mock.pk])).content.decode()
    assert (
        "1. The payment provider fails 30% of calls. Retry or pause?\n   - Interrupted at 37:10 into the interview ("
        in text
    )
    assert "acknowledged at 37:25 (" in text
    assert "Not reached before you finished (due at 40:00)." in text


def test_the_interruptions_are_the_prompts_first_push_then_the_curveballs_that_show_its_preset(db):
    question = make_question("crash-prone", preset="crash", followups=["First push?", "Second push?"])
    texts = [ball["text"] for ball in services.mock_interruptions(question)]
    assert texts == ["First push?", CURVEBALLS[1]["text"], CURVEBALLS[0]["text"]]  # SIGKILL shows `crash`
    assert [ball["key"] for ball in services.mock_interruptions(question)] == [
        "curveball-0",
        "curveball-3",
        "curveball-2",
    ]


def test_finishing_early_reveals_the_curveballs(client, mock):
    client.post(reverse("drills:mock_finish", args=[mock.pk]), {"covered": []})
    assert "A deploy just put 10,000 jobs in the DLQ" in client.get(mock.get_absolute_url()).content.decode()


def test_the_rubric_and_the_export_wait_until_the_interview_is_finished(client, mock):
    """Issue #23: the export holds the self-assessment checklist, so it is refused (409) during the interview."""
    page = client.get(mock.get_absolute_url()).content.decode()
    assert 'name="covered"' not in page
    assert KEY_POINTS[0]["label"] not in page
    export = client.get(reverse("drills:mock_export", args=[mock.pk]))
    assert export.status_code == 409
    assert b"Finish the interview first" in export.content


def test_finishing_ticks_what_the_notes_cover_and_turns_the_prompt_into_a_due_drill(client, mock):
    client.post(reverse("drills:mock_save", args=[mock.pk]), {"phase": "deep_dive", "notes": (
        "Each dependency gets its own bulkhead so one slow provider cannot starve the others. "
        "A circuit breaker opens while the provider is failing, so we stop pulling work."
    )})  # fmt: skip
    client.post(reverse("drills:mock_finish", args=[mock.pk]), {})
    mock.refresh_from_db()
    assert mock.self_assessment == [0, 1]
    card = Card.objects.get()
    assert card.question == mock.question
    assert card.due <= timezone.now()
    # The candidate corrects the ticks; that adds no second card.
    client.post(reverse("drills:mock_finish", args=[mock.pk]), {"covered": ["0"]})
    mock.refresh_from_db()
    assert mock.self_assessment == [0]
    assert Card.objects.count() == 1


# Surprise me draws full design prompts --------------------------------------------------------------


def test_surprise_me_draws_only_design_prompts(client):
    make_question("junior-one-liner", level="junior")
    make_question("staff-concept", level="staff")
    designs = {make_design_question(f"design-{n}").pk for n in range(3)}
    for _ in range(12):
        response = client.post(reverse("drills:mock_start"), {"question": ""})
        assert response.status_code == 302
    assert {mock.question_id for mock in MockInterview.objects.all()} <= designs
    assert len({mock.question_id for mock in MockInterview.objects.all()}) > 1


def test_surprise_me_without_design_prompts_falls_back_to_staff_with_a_note(client):
    make_question("junior-one-liner", level="junior")
    make_question("senior-question", level="senior")
    staff = make_question("staff-concept", level="staff")
    response = client.post(reverse("drills:mock_start"), {"question": ""}, follow=True)
    assert MockInterview.objects.get().question == staff
    assert "No full design prompts are loaded yet" in response.content.decode()


def test_surprise_me_never_picks_a_junior_question(client):
    make_question("junior-one-liner", level="junior")
    response = client.post(reverse("drills:mock_start"), {"question": ""})
    assert response.status_code == 404
    assert not MockInterview.objects.exists()


def test_prompt_dropdown_lists_design_prompts_first(client):
    make_question("junior-one-liner", level="junior")
    design = make_design_question()
    html = client.get(reverse("drills:mock_start")).content.decode()
    groups = re.findall(r'<optgroup label="([^"]+)">', html)
    assert groups[0].startswith("Design prompts")
    assert groups[1] == "Concept questions"
    assert html.index(f'value="{design.pk}"') < html.index("[Junior]")
    assert "Surprise me: a random full design prompt" in html


def test_choosing_a_prompt_still_works_and_bad_ids_are_a_form_error(client):
    junior = make_question("junior-one-liner", level="junior")
    response = client.post(reverse("drills:mock_start"), {"question": junior.pk})
    assert response.status_code == 302
    assert MockInterview.objects.get().question == junior
    assert client.post(reverse("drills:mock_start"), {"question": "99999"}).status_code == 400
    assert MockInterview.objects.count() == 1


# Finishing: notes beside the model answer -----------------------------------------------------------


def test_design_answer_splits_into_the_five_phases(db):
    question = make_design_question()
    intro, parts = services.answer_html_phases(question.answer_html)
    assert "Start from the guarantees" in intro
    assert [re.search(r"Walrus-[\w-]+", part)[0] for part in parts] == [
        "Walrus-requirements", "Walrus-estimates", "Walrus-design", "Walrus-deep-dive", "Walrus-failure",
    ]  # fmt: skip
    assert "not a heading" in parts[1]  # a code block's "##" stays in its phase
    intro_md, parts_md = services.answer_md_phases(question.answer_md)
    assert intro_md == "Start from the guarantees, then size it."
    assert parts_md[1].startswith("Walrus-estimates")
    assert "## not a heading" in parts_md[1]
    assert parts_md[4] == "Walrus-failure: broker loss, poison messages, redrive."


def test_phase_split_tolerates_markup_and_refuses_a_wrong_shape():
    headings = [
        "Requirements",
        "2. Estimates",
        "High-level <em>design</em>",
        "Deep dive",
        "Failure modes &amp; wrap-up",
    ]
    html = "".join(f'<h2 id="h{n}" class="x">{title}</h2>\n<p>part {n}</p>\n' for n, title in enumerate(headings))
    intro, parts = services.answer_html_phases(html)
    assert intro == ""
    assert parts == [f"<p>part {n}</p>" for n in range(5)]
    assert services.answer_html_phases(html.replace('<h2 id="h4"', '<h3 id="h4"')) is None  # four phases
    swapped = html.replace("Requirements", "TMP").replace("2. Estimates", "Requirements").replace("TMP", "Estimates")
    assert services.answer_html_phases(swapped) is None  # out of order
    assert services.answer_html_phases("<p>A concept answer.</p>") is None
    assert services.answer_md_phases("Just a paragraph.\n\n## Why\nBecause.") is None


def test_every_design_prompt_in_the_content_splits_into_phases(content):
    designs = list(content.filter(kind=Question.Kind.DESIGN))
    assert designs, "the content has no design prompts"
    for question in designs:
        assert services.answer_html_phases(question.answer_html), question.slug
        assert services.answer_md_phases(question.answer_md), question.slug


def finish_design_mock(client) -> MockInterview:
    design = make_design_question()
    client.post(reverse("drills:mock_start"), {"question": design.pk})
    mock = MockInterview.objects.get()
    save = reverse("drills:mock_save", args=[mock.pk])
    client.post(save, {"phase": "requirements", "notes": "my-req-notes: at-least-once"})
    client.post(save, {"phase": "deep_dive", "notes": "my-deep-notes: leases"})
    client.post(reverse("drills:mock_finish", args=[mock.pk]), {"covered": ["1"]})
    return mock


def test_finished_design_mock_shows_each_phases_notes_beside_the_model_answer(client):
    mock = finish_design_mock(client)
    html = client.get(mock.get_absolute_url()).content.decode()
    review = html[html.index('id="mock-review"') :]
    sections = re.findall(r'<section class="compare" aria-labelledby="compare-(\w+)">(.*?)</section>', review, re.S)
    assert [key for key, _ in sections] == [phase["key"] for phase in PHASES]
    bodies = dict(sections)
    assert "my-req-notes" in bodies["requirements"]
    assert "Walrus-requirements" in bodies["requirements"]
    assert "my-deep-notes" in bodies["deep_dive"]
    assert "Walrus-deep-dive" in bodies["deep_dive"]
    assert "Walrus-requirements" not in bodies["deep_dive"]
    assert "No notes for this phase." in bodies["estimates"]
    assert "Walrus-estimates" in bodies["estimates"]
    # The rubric says what the learner ticked.
    assert re.search(r'class="point covered"><input type="checkbox" name="covered" value="1" checked>', review) is None
    assert re.search(r'<label class="point covered"><input[^>]*value="1" checked>', html)
    assert re.search(r'<label class="point missed"><input[^>]*value="0">', html)


def test_unfinished_mock_does_not_show_the_model_answer(client):
    design = make_design_question()
    client.post(reverse("drills:mock_start"), {"question": design.pk})
    html = client.get(MockInterview.objects.get().get_absolute_url()).content.decode()
    assert "Walrus-requirements" not in html
    assert 'id="mock-review"' not in html


def test_finished_concept_mock_shows_the_whole_answer_once(client, mock):
    client.post(reverse("drills:mock_save", args=[mock.pk]), {"phase": "estimates", "notes": "my-estimates"})
    client.post(reverse("drills:mock_finish", args=[mock.pk]), {"covered": ["0"]})
    html = client.get(mock.get_absolute_url()).content.decode()
    assert html.count(MODEL_ANSWER) == 1
    assert "not split into interview phases" in html
    assert "my-estimates" in html[html.index('id="mock-review"') :]


def test_htmx_finish_shows_the_comparison_and_moves_focus_to_the_result(client):
    design = make_design_question()
    client.post(reverse("drills:mock_start"), {"question": design.pk})
    mock = MockInterview.objects.get()
    html = client.post(reverse("drills:mock_finish", args=[mock.pk]), {}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in html
    assert re.search(r'<p role="status" id="finish-status" tabindex="-1" autofocus>', html)
    assert "Walrus-failure" in html
    # Finishing before 35:00 reveals the curveballs, which live outside #finish: they come out of band.
    assert 'id="curveballs" data-curveballs-at="2100" hx-swap-oob="true">' in html
    assert "A broker disk fills up at peak" in html


def test_export_of_a_finished_design_mock_has_the_model_answer_per_phase(client):
    mock = finish_design_mock(client)
    text = client.get(reverse("drills:mock_export", args=[mock.pk])).content.decode()
    requirements = text[text.index("## 1. Requirements") : text.index("## 2. Estimates")]
    assert "### Your notes\n\nmy-req-notes: at-least-once" in requirements
    assert "### Model answer\n\nWalrus-requirements: at-least-once delivery, per-key order." in requirements
    failure = text[text.index("## 5. Failure modes") : text.index("## Self-assessment")]
    assert "A broker disk fills up at peak" in failure  # curveballs are out once finished
    assert "Walrus-failure: broker loss" in failure
    assert "- [x] Circuit breaker pauses consumption" in text


@pytest.mark.parametrize(("minutes", "curveballs_at"), [(45, "37:00"), (35, "29:00"), (20, "16:00")])
def test_a_mock_comes_in_20_35_and_45_minute_formats_with_five_phases_each(client, question, minutes, curveballs_at):
    response = client.post(reverse("drills:mock_start"), {"question": question.pk, "minutes": str(minutes)})
    mock = MockInterview.objects.get(pk=int(response["Location"].rstrip("/").rsplit("/", 1)[1]))
    assert mock.minutes == minutes
    assert sum(phase["minutes"] for phase in mock.phases()) == minutes
    assert len(mock.phases()) == len(PHASES)
    html = client.get(mock.get_absolute_url()).content.decode()
    assert f'data-length="{minutes * 60}"' in html
    assert f"the first at <strong>{curveballs_at}</strong>" in html


def test_an_unknown_mock_length_is_refused(client, question):
    response = client.post(reverse("drills:mock_start"), {"question": question.pk, "minutes": "90"})
    assert response.status_code == 400
    assert not MockInterview.objects.exists()


def test_pause_stops_the_clock_resume_restarts_it_and_next_phase_jumps_ahead(client, mock):
    url = reverse("drills:mock_clock", args=[mock.pk])
    mock.started_at = timezone.now() - timedelta(seconds=90)
    mock.save(update_fields=["started_at"])
    assert client.post(url, {"action": "pause"}).status_code == 302
    mock.refresh_from_db()
    frozen = mock.elapsed_s()
    assert frozen == mock.elapsed_s(timezone.now() + timedelta(minutes=10))  # paused: time stands still
    assert "data-paused" in client.get(mock.get_absolute_url()).content.decode()
    client.post(url, {"action": "next"})  # from requirements (0-5 min) to estimates at 5:00
    mock.refresh_from_db()
    assert mock.elapsed_s() == 5 * 60
    client.post(url, {"action": "resume"})
    mock.refresh_from_db()
    assert mock.paused_at is None
    assert 5 * 60 <= mock.elapsed_s() <= 5 * 60 + 2
    assert client.post(url, {"action": "rewind"}).status_code == 400
    assert Client().post(url, {"action": "pause"}).status_code == 404  # only its own visitor


def test_a_curveball_asks_for_an_answer_before_it_links_the_lab_preset_that_shows_it(client, mock):
    mock.started_at = timezone.now() - timedelta(seconds=ALL_CURVEBALLS_IN_S + 5)
    mock.save(update_fields=["started_at"])
    topic_ball = len(mock.question.followups)  # the topic's first curveball: the poison preset
    html = client.get(mock.get_absolute_url()).content.decode()
    assert f'name="phase" value="curveball-{topic_ball}"' in html
    assert 'href="/sandbox/?preset=poison"' not in html
    assert "Answer first" in html
    saved = client.post(
        reverse("drills:mock_save", args=[mock.pk]),
        {"phase": f"curveball-{topic_ball}", "notes": "Pause the consumer, roll back, redrive a sample slowly."},
    )
    assert saved.status_code == 302
    html = client.get(mock.get_absolute_url()).content.decode()
    assert 'href="/sandbox/?preset=poison"' in html
    assert "Pause the consumer, roll back" in html
    assert (
        client.post(reverse("drills:mock_save", args=[mock.pk]), {"phase": "curveball-99", "notes": "x"}).status_code
        == 400
    )
