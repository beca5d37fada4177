import pytest
from django.test import Client
from django.urls import reverse

from tests.drills.conftest import make_question
from topics.drills.models import MockInterview

pytestmark = pytest.mark.django_db


@pytest.fixture
def mock(client, question) -> MockInterview:
    response = client.post(reverse("drills:mock_start"), {"question": question.pk})
    mock = MockInterview.objects.get()
    assert response["Location"] == mock.get_absolute_url()
    return mock


def test_mock_page_shows_phases_budgets_and_curveballs(client, mock):
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
    assert "/sandbox/?preset=poison" in html
    assert "SIGKILLed mid-charge" in html
    assert "/sandbox/?preset=crash" in html
    assert "Traffic tripled in 5 minutes" in html
    assert "/sandbox/?preset=spike" in html
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
    assert "## 4. Deep dive (15 min)\n\nDLQ + redrive" in text
    assert "- A deploy just put 10,000 jobs in the DLQ — what now? (Lab preset: `poison`)" in text
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
    assert client.post(reverse("drills:mock_start"), {"question": "abc"}).status_code == 200


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
