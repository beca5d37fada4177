"""CSRF on every POST, the CSP header everywhere, escaping of user text, and fuzzed input never 500s."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.models import Experiment
from tests.conftest import clear_rate_limits

TOPIC, QUESTION = "queueing", "traffic-spikes"
UUID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def content(db):
    call_command("load_content", verbosity=0)


def post_endpoints(experiment_id: int) -> list[str]:
    drill = {"topic": TOPIC, "slug": QUESTION}
    return [
        reverse("topics:mark_understood", args=[TOPIC, "overview"]),
        reverse("drills:question", kwargs=drill),
        reverse("drills:rate", kwargs={**drill, "token": UUID}),
        reverse("drills:mock_start"),
        reverse("drills:mock_save", args=[1]),
        reverse("drills:mock_finish", args=[1]),
        reverse("drills:import"),
        reverse("signup"),
        reverse("login"),
        reverse("logout"),
        reverse("sandbox:start"),
        reverse("sandbox:redrive", args=[experiment_id]),
        reverse("sandbox:discard", args=[experiment_id]),
        reverse("sandbox:crash", args=[experiment_id]),
        reverse("sandbox:stop_job", args=[experiment_id]),
        reverse("sandbox:stop", args=[experiment_id]),
    ]


def test_every_post_without_a_csrf_token_is_refused_and_the_htmx_header_is_accepted(content):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/")  # sets the CSRF cookie, as a first page view does
    token = browser.cookies["csrftoken"].value
    experiment = Experiment.objects.create(anon_id="someone", preset="happy", params={}, seed=1)
    for url in post_endpoints(experiment.pk):
        assert browser.post(url, {}).status_code == 403, url
        with_header = browser.post(url, {}, headers={"X-CSRFToken": token, "HX-Request": "true"})
        assert with_header.status_code != 403, url


def test_csp_header_is_on_pages_fragments_and_error_pages(content, client):
    responses = {
        "page": client.get("/topics/queueing/"),
        "fragment": client.post(
            reverse("topics:mark_understood", args=[TOPIC, "overview"]),
            {"understood": "1"},
            headers={"HX-Request": "true"},
        ),
        "404": client.get("/no-such-page/"),
        "400": client.post(reverse("sandbox:start"), {"preset": "happy", "jobs": "0"}),
    }
    for name, response in responses.items():
        policy = response.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy, name
        assert "unsafe-inline" not in policy, name
        assert "unsafe-eval" not in policy, name


def test_user_text_is_escaped_in_answers_notes_predictions_and_search(content, client):
    evil = "<script>alert('x')</script>"
    url = reverse("drills:question", args=[TOPIC, QUESTION])
    reveal = client.post(url, {"answer": evil, "action": "submit", "started_at": ""}, follow=True)
    assert evil not in reveal.content.decode()
    assert "&lt;script&gt;" in reveal.content.decode()
    mock = client.post(reverse("drills:mock_start"), {"question": ""}, follow=True)
    mock_url = mock.redirect_chain[-1][0]
    mock_id = int(mock_url.rstrip("/").split("/")[-1])
    client.post(reverse("drills:mock_save", args=[mock_id]), {"phase": "requirements", "notes": evil})
    assert evil not in client.get(mock_url).content.decode()
    assert evil not in client.get("/search/", {"q": evil}).content.decode()


answers = st.text(max_size=300) | st.sampled_from(["", " ", "x" * 25_000, "\x00", "🙂" * 50])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    answer=answers,
    action=st.sampled_from(["submit", "give_up", "", "rm -rf", "submit\x00"]),
    started=st.text(max_size=30),
)
def test_fuzzed_drill_answers_never_500(content, client, answer, action, started):
    clear_rate_limits()  # every example reaches the view, not the answer limiter
    url = reverse("drills:question", args=[TOPIC, QUESTION])
    response = client.post(url, {"answer": answer, "action": action, "started_at": started})
    assert response.status_code < 500
    assert response.status_code != 429


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(phase=st.text(max_size=20) | st.sampled_from(["requirements", "deep_dive"]), notes=answers)
def test_fuzzed_mock_notes_never_500(content, client, phase, notes):
    clear_rate_limits()
    mock = client.post(reverse("drills:mock_start"), {"question": ""}, follow=True)
    mock_id = int(mock.redirect_chain[-1][0].rstrip("/").split("/")[-1])
    response = client.post(reverse("drills:mock_save", args=[mock_id]), {"phase": phase, "notes": notes})
    assert response.status_code < 500
    assert response.status_code != 429


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
export_like = st.fixed_dictionaries(
    {"format": st.sampled_from(["queue-prep-drills", "other"]), "version": st.integers(-1, 3)},
    optional={
        "cards": st.lists(
            st.dictionaries(st.sampled_from(["topic", "question", "fsrs", "reviews"]), json_values), max_size=3
        )
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=export_like | json_values)
def test_fuzzed_progress_imports_never_500(content, client, payload):
    clear_rate_limits()
    upload = SimpleUploadedFile("progress.json", json.dumps(payload).encode(), content_type="application/json")
    response = client.post(reverse("drills:import"), {"file": upload})
    assert response.status_code < 500
    assert response.status_code != 429


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(max_size=250))
def test_fuzzed_search_queries_never_500(content, client, q):
    clear_rate_limits()
    assert client.get("/search/", {"q": q}).status_code in {200, 400}


lab_fields = st.fixed_dictionaries(
    {},
    optional={
        "preset": st.sampled_from(["happy", "spike", "nope", ""]),
        "jobs": st.one_of(st.integers(-5, 600), st.text(max_size=4)),
        "failure_rate": st.one_of(st.floats(allow_nan=True), st.text(max_size=4)),
        "duration_ms": st.integers(-100, 20_000),
        "max_retries": st.integers(-2, 20),
        "jitter": st.sampled_from(["none", "full", "equal", "<b>"]),
        "seed": st.one_of(st.integers(-5, 2**40), st.text(max_size=4)),
        "prediction": st.text(max_size=2500),
    },
)


@pytest.mark.django_db(transaction=True)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=lab_fields)
def test_fuzzed_lab_starts_never_500(client, data):
    from sandbox.engine import experiments
    from sandbox.engine.presets import DEFAULTS

    clear_rate_limits()  # every example reaches the form and the engine, not the start limiter
    form = {**{k: str(v) for k, v in DEFAULTS.items()}, "preset": "happy", "duration_ms": "1", "jobs": "2"}
    response = client.post(reverse("sandbox:start"), {**form, **{k: str(v) for k, v in data.items()}})
    assert response.status_code in {302, 400}
    for experiment in Experiment.objects.filter(status="running"):
        experiments.experiment_stop(experiment)
