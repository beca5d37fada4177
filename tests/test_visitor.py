"""One visitor identity: no session until the visitor acts, and everything they own follows them at log-in."""

import ast
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from prepsite.visitor import ANON_KEY
from sandbox.engine.presets import PRESETS
from sandbox.models import Experiment
from tests.drills.conftest import make_question
from topics.drills.models import Attempt, Card, MockInterview
from topics.models import SectionUnderstood

BASE_DIR = Path(__file__).resolve().parent.parent
PASSWORD = "a-long-enough-passphrase-42"
PAGES = ["/", "/topics/", "/topics/queueing/", "/search/?q=retry", "/drills/", "/drills/progress/", "/sandbox/"]


@pytest.mark.django_db
@pytest.mark.parametrize("url", [*PAGES, "/sandbox/experiments/", "/topics/queueing/personal/"])
def test_a_plain_page_view_writes_no_session(client, queueing, url):
    response = client.get(url, follow=True)  # /topics/ with one topic redirects to it
    assert response.status_code == 200
    assert "sessionid" not in response.cookies
    assert not Session.objects.exists()


def do_something_in_every_app(client, queueing) -> dict:
    """Mark a section, answer and rate a drill, start a mock interview and a Lab experiment, anonymously."""
    section = queueing.sections.in_order()[0]
    client.post(reverse("topics:mark_understood", args=["queueing", section.slug]), {"understood": "1"})
    question = queueing.questions.in_order()[0]
    answer = client.post(question.get_absolute_url(), {"answer": "retries with jitter", "started_at": ""})
    client.post(answer["Location"] + "rate/", {"rating": "3"})
    client.post(reverse("drills:mock_start"), {"question": question.pk})
    params = {**PRESETS["happy"].parameters(), "preset": "happy", "seed": "1", "prediction": ""}
    started = client.post(reverse("sandbox:start"), {k: str(v) for k, v in params.items()})
    assert started.status_code == 302, started.content[:500]
    anon_id = client.session[ANON_KEY]
    owned = {
        "marks": SectionUnderstood.objects.filter(anon_id=anon_id).count(),
        "cards": Card.objects.filter(anon_id=anon_id).count(),
        "attempts": Attempt.objects.filter(anon_id=anon_id).count(),
        "mocks": MockInterview.objects.filter(anon_id=anon_id).count(),
        "experiments": Experiment.objects.filter(anon_id=anon_id).count(),
    }
    assert owned == {"marks": 1, "cards": 1, "attempts": 1, "mocks": 1, "experiments": 1}
    return owned


def owned_by(user) -> dict:
    return {
        "marks": SectionUnderstood.objects.filter(user=user).count(),
        "cards": Card.objects.filter(user=user).count(),
        "attempts": Attempt.objects.filter(user=user).count(),
        "mocks": MockInterview.objects.filter(user=user).count(),
        "experiments": Experiment.objects.filter(user=user).count(),
    }


@pytest.mark.django_db
def test_signing_up_claims_what_the_anonymous_visitor_owned_in_every_app(client, queueing, django_user_model):
    owned = do_something_in_every_app(client, queueing)
    response = client.post(reverse("signup"), {"username": "cy", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302
    user = django_user_model.objects.get(username="cy")
    assert owned_by(user) == owned
    assert ANON_KEY not in client.session  # the anonymous id is spent
    experiment = Experiment.objects.get(user=user)
    fresh = Client()
    fresh.post(reverse("login"), {"username": "cy", "password": PASSWORD})
    assert fresh.get(reverse("sandbox:detail", args=[experiment.pk])).status_code == 200
    assert fresh.post(reverse("sandbox:stop", args=[experiment.pk])).status_code == 302


@pytest.mark.django_db
def test_logging_in_claims_what_the_anonymous_visitor_owned_in_every_app(client, queueing, django_user_model):
    user = django_user_model.objects.create_user("ada", password=PASSWORD)
    owned = do_something_in_every_app(client, queueing)
    client.post(reverse("login"), {"username": "ada", "password": PASSWORD})
    assert owned_by(user) == owned
    stranger = Client()
    stranger.get("/")
    assert stranger.get(reverse("sandbox:history")).context["rows"] == []


# ---------------------------------------------------------------- the seams, checked in the source


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_study_never_imports_the_lab():
    offenders = [
        str(path.relative_to(BASE_DIR))
        for path in (BASE_DIR / "topics").rglob("*.py")
        if any(name == "sandbox" or name.startswith("sandbox.") for name in imports_of(path))
    ]
    assert offenders == []


def test_lab_views_are_http_glue_without_redis_keys_or_queueing_maths():
    source = (BASE_DIR / "sandbox" / "views.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not [s for s in strings if s.startswith(("lab:", "rq:", "lab-"))]
    assert not imports_of(BASE_DIR / "sandbox" / "views.py") & {"math", "redis", "rq", "prepsite.redis_conn"}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow | ast.Div)]
    # Thin views: each is a few lines of HTTP glue (the longest is 15 today; 25 leaves room to grow, and
    # a module that grows by adding views is fine — one that grows by fattening a view is not).
    lengths = {n.name: n.end_lineno - n.lineno + 1 for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {name: n for name, n in lengths.items() if n > 25} == {}


def test_every_app_asks_one_identity_function():
    apps = [BASE_DIR / "topics", BASE_DIR / "sandbox", BASE_DIR / "prepsite"]
    for path in (p for app in apps for p in app.rglob("*.py") if "migrations" not in p.parts):
        text = path.read_text(encoding="utf-8")
        if path.name == "visitor.py":
            continue
        assert "session_key" not in text, f"{path} identifies a visitor by session key"
        assert "request.session[" not in text, f"{path} reads the session"
        assert "request.session.get(" not in text, f"{path} reads the session"
    users = [
        path.relative_to(BASE_DIR).parts[0]
        for app in apps
        for path in app.rglob("*.py")
        if "visitor_for(" in path.read_text(encoding="utf-8") and path.name != "visitor.py"
    ]
    # prepsite defines it (visitor.py) and, importing no app, holds no per-visitor page of its own.
    assert {"topics", "sandbox"} <= set(users)


def test_the_drill_for_a_preset_comes_from_question_front_matter(queueing):
    from sandbox.liveview.readmodel import preset_links

    links = preset_links(["poison"])["poison"]
    first = queueing.questions.filter(preset="poison").in_order().first()
    assert links["drill_url"] == first.get_absolute_url()
    section = queueing.sections.get(slug=PRESETS["poison"].section)
    assert links["study_url"] == section.get_absolute_url()
    assert links["study_url"].startswith("/topics/queueing/")


def test_without_content_a_preset_has_no_links_rather_than_broken_ones(db):
    from sandbox.liveview.readmodel import preset_links

    make_question("other", topic_slug="other", preset="flaky")
    assert preset_links(["poison"])["poison"] == {"study_url": None, "study_title": "", "drill_url": None}
