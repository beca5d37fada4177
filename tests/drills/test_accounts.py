from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.drills.conftest import make_question
from topics.drills import scheduling
from topics.drills.models import Attempt, Card, MockInterview, Review

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery-9"


def drill(client, question, rating: int) -> None:
    url = reverse("drills:question", args=[question.topic.slug, question.slug])
    attempt_url = client.post(url, {"answer": "bulkhead", "action": "submit"})["Location"]
    assert client.post(attempt_url + "rate/", {"rating": str(rating)}).status_code == 302


def log_in(client, username: str):
    return client.post(reverse("login"), {"username": username, "password": PASSWORD})


def test_anonymous_progress_merges_into_account_on_login(client, django_user_model):
    only_anon, shared, only_user = make_question("only-anon"), make_question("shared"), make_question("only-user")
    user = django_user_model.objects.create_user("ada", password=PASSWORD)
    # The account already has history on two questions, from an earlier session.
    for question in (shared, only_user):
        card = Card(user=user, question=question)
        past = timezone.now() - timedelta(days=3)
        card.set_fsrs(scheduling.review(scheduling.new_card(past), 3, past))
        card.save()
        Review.objects.create(card=card, rating=3, reviewed_at=past)
    drill(client, only_anon, 3)
    drill(client, shared, 1)  # later than the account's review of "shared"
    anon_shared_due = Card.objects.get(user__isnull=True, question=shared).due

    response = log_in(client, "ada")
    assert response.status_code == 302

    cards = Card.objects.filter(user=user)
    assert sorted(cards.values_list("question__slug", flat=True)) == ["only-anon", "only-user", "shared"]
    assert not Card.objects.filter(user__isnull=True).exists()
    merged = cards.get(question=shared)
    assert merged.due == anon_shared_due  # the later review's state wins
    assert merged.reviews.count() == 2
    assert merged.reps == 2
    assert Review.objects.count() == 4  # nothing duplicated, nothing lost
    assert Attempt.objects.filter(user=user).count() == 2
    assert client.get(reverse("drills:progress")).status_code == 200


def test_merge_keeps_account_card_when_it_is_newer_and_skips_duplicate_reviews(client, django_user_model):
    question = make_question()
    user = django_user_model.objects.create_user("bob", password=PASSWORD)
    drill(client, question, 3)
    anon_card = Card.objects.get()
    anon_review = anon_card.reviews.get()
    future = timezone.now() + timedelta(hours=1)
    card = Card(user=user, question=question)
    card.set_fsrs(scheduling.review(scheduling.new_card(future), 4, future))
    card.save()
    Review.objects.create(card=card, rating=anon_review.rating, reviewed_at=anon_review.reviewed_at)  # same review
    Review.objects.create(card=card, rating=4, reviewed_at=future)
    kept_due = card.due

    log_in(client, "bob")

    merged = Card.objects.get()
    assert merged.user == user
    assert merged.due == kept_due
    assert merged.reviews.count() == 2


def test_merge_on_signup_and_logout_starts_fresh(client):
    question = make_question()
    drill(client, question, 3)
    response = client.post(reverse("signup"), {"username": "cy", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302
    assert Card.objects.get().user.username == "cy"
    html = client.get(reverse("drills:home")).content.decode()
    assert "cy" in html
    assert "Log out" in html
    client.post(reverse("logout"))
    assert "Log in" in client.get(reverse("drills:home")).content.decode()
    assert not Card.objects.filter(user__isnull=True).exists()


def test_login_and_password_pages_render(client, django_user_model):
    assert "Log in" in client.get(reverse("login")).content.decode()
    assert client.get(reverse("signup")).status_code == 200
    bad = client.post(reverse("login"), {"username": "nobody", "password": "x"})
    assert bad.status_code == 200
    assert "Please enter a correct username and password" in bad.content.decode()
    django_user_model.objects.create_user("dee", password=PASSWORD)
    log_in(client, "dee")
    assert client.get(reverse("password_change")).status_code == 200
    assert client.get(reverse("password_change_done")).status_code == 200


def test_mock_interviews_move_with_the_login(client, django_user_model):
    question = make_question()
    client.post(reverse("drills:mock_start"), {"question": question.pk})
    django_user_model.objects.create_user("eve", password=PASSWORD)
    log_in(client, "eve")
    assert MockInterview.objects.get().user.username == "eve"


def test_login_page_tells_a_logged_in_user_who_they_are_instead_of_the_form(client, django_user_model):
    user = django_user_model.objects.create_user("ada", password="a-long-enough-passphrase-42")
    client.force_login(user)
    html = client.get(reverse("login")).content.decode()
    assert "You're logged in as <strong>ada</strong>" in html
    assert 'name="password"' not in html
    assert f'action="{reverse("logout")}"' in html
    assert f'href="{reverse("drills:home")}"' in html


def test_login_page_shows_the_form_to_a_visitor(client):
    html = client.get(reverse("login")).content.decode()
    assert 'name="password"' in html
    assert "You're logged in as" not in html
