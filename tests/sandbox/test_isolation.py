"""Experiments belong to the visitor who started them: anyone else gets 404 for every page, fragment and action."""

import pytest
from django.test import Client
from django.urls import reverse

from prepsite.visitor import ANON_KEY
from sandbox.engine.presets import PRESETS
from sandbox.models import Experiment
from tests.sandbox.helpers import anonymous_visitor

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def owned(client) -> Experiment:
    owner = anonymous_visitor(client)
    return Experiment.objects.create(**owner.owner(), preset="poison", params=PRESETS["poison"].parameters(), seed=3)


@pytest.fixture
def stranger() -> Client:
    other = Client()
    anonymous_visitor(other)
    return other


ACTIONS = ["redrive", "discard", "crash", "stop_job", "stop"]


@pytest.mark.django_db
def test_owner_sees_their_experiment(client, owned):
    assert client.get(reverse("sandbox:detail", args=[owned.pk])).status_code == 200
    assert client.get(reverse("sandbox:live", args=[owned.pk]), **HX).status_code == 286


@pytest.mark.django_db
def test_another_visitor_gets_404_for_the_page_and_the_live_fragment(stranger, owned):
    assert stranger.get(reverse("sandbox:detail", args=[owned.pk])).status_code == 404
    assert stranger.get(reverse("sandbox:live", args=[owned.pk]), **HX).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("action", ACTIONS)
def test_another_visitor_gets_404_for_every_action(stranger, owned, action):
    url = reverse(f"sandbox:{action}", args=[owned.pk])
    assert stranger.post(url, {"job": "1"}).status_code == 404
    assert stranger.post(url, {"job": "1"}, **HX).status_code == 404


@pytest.mark.django_db
def test_another_visitor_cannot_compare_someone_elses_experiment(client, stranger, owned):
    mine = Experiment.objects.create(
        anon_id=stranger.session[ANON_KEY], preset="happy", params=PRESETS["happy"].parameters(), seed=1
    )
    assert stranger.get(reverse("sandbox:compare"), {"a": mine.pk, "b": owned.pk}).status_code == 404
    assert client.get(reverse("sandbox:compare"), {"a": mine.pk, "b": owned.pk}).status_code == 404


@pytest.mark.django_db
def test_another_visitors_experiments_are_not_listed(client, stranger, owned):
    assert f"#{owned.pk}" in client.get(reverse("sandbox:history")).content.decode()
    assert stranger.get(reverse("sandbox:history")).context["rows"] == []
    assert list(stranger.get(reverse("sandbox:home")).context["recent"]) == []


@pytest.mark.django_db
def test_a_logged_in_user_sees_only_their_own_experiments(client, django_user_model, owned):
    user = django_user_model.objects.create_user("ada", password="pw-long-enough-1")
    other = Client()
    other.force_login(user)
    assert other.get(reverse("sandbox:detail", args=[owned.pk])).status_code == 404
    theirs = Experiment.objects.create(user=user, preset="happy", params=PRESETS["happy"].parameters(), seed=1)
    assert other.get(reverse("sandbox:detail", args=[theirs.pk])).status_code == 200
    assert client.get(reverse("sandbox:detail", args=[theirs.pk])).status_code == 404
