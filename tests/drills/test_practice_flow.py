import itertools
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.drills.conftest import MODEL_ANSWER, make_question
from topics.drills import scheduling
from topics.drills.models import Attempt, Card, Review

pytestmark = pytest.mark.django_db


def question_url(question) -> str:
    return reverse("drills:question", args=[question.topic.slug, question.slug])


def submit(client, question, answer="Bulkheads and a circuit breaker.", action="submit", **extra):
    return client.post(question_url(question), {"answer": answer, "action": action, "started_at": "", **extra})


def test_model_answer_absent_before_attempt(client, question):
    response = client.get(question_url(question))
    html = response.content.decode()
    assert response.status_code == 200
    assert question.prompt in html
    assert "Zebra-unique" not in html
    assert "Circuit breaker pauses consumption" not in html  # rubric hidden too
    assert "Submit answer" in html
    assert "I don&#x27;t know — show me" in html or "I don't know — show me" in html


def test_model_answer_present_after_attempt(client, question):
    response = submit(client, question)
    assert response.status_code == 302
    attempt = Attempt.objects.get()
    assert response["Location"] == attempt.get_absolute_url()
    html = client.get(response["Location"]).content.decode()
    assert MODEL_ANSWER in html
    assert "The payment provider fails 30% of calls" in html
    assert "/sandbox/?preset=flaky" in html


def test_giving_up_with_empty_answer_reveals(client, question):
    response = submit(client, question, answer="", action="give_up")
    attempt = Attempt.objects.get()
    assert attempt.gave_up
    assert MODEL_ANSWER in client.get(response["Location"]).content.decode()


def test_empty_answer_without_giving_up_is_a_clear_error(client, question):
    response = submit(client, question, answer="   ")
    assert response.status_code == 200
    assert "Write an answer first" in response.content.decode()
    assert MODEL_ANSWER not in response.content.decode()
    assert not Attempt.objects.exists()


def test_fifty_thousand_characters_is_a_clear_error_not_500(client, question):
    response = submit(client, question, answer="x" * 50_000)
    assert response.status_code == 200
    assert "50,000 characters; the limit is 20,000" in response.content.decode()
    assert not Attempt.objects.exists()


def test_unknown_question_slug_is_404(client, question):
    assert client.get(reverse("drills:question", args=["queueing", "no-such-question"])).status_code == 404
    assert client.get(reverse("drills:question", args=["no-topic", question.slug])).status_code == 404
    assert client.get(reverse("drills:topic_drill", args=["no-topic"])).status_code == 404


def test_reveal_prechecks_matched_points_and_shows_matched_words(client, question):
    response = submit(client, question, answer="I'd add BULKHEADS, then a circuit-breaker.")
    html = client.get(response["Location"]).content.decode()
    checked = re.findall(r'name="ticked" value="(\d)"( checked)?', html)
    assert checked == [("0", " checked"), ("1", " checked"), ("2", ""), ("3", "")]
    assert "<mark>BULKHEADS</mark>" in html
    assert "<mark>circuit-breaker</mark>" in html


def test_rating_good_schedules_card_and_shows_next_due(client, question):
    attempt_url = submit(client, question)["Location"]
    response = client.post(attempt_url + "rate/", {"rating": "3", "ticked": ["0", "2"]})
    assert response.status_code == 302
    card = Card.objects.get()
    review = Review.objects.get()
    assert (review.rating, review.ticked, review.matched) == (3, [0, 2], [0, 1])
    assert card.reps == 1
    assert card.due > card.last_review
    html = client.get(attempt_url).content.decode()
    assert re.search(r"Next review in <strong data-next-due>\d+ (minute|hour|day)s?</strong>", html)


def test_htmx_submit_and_rate_return_partials(client, question):
    headers = {"HTTP_HX_REQUEST": "true"}
    response = client.post(
        question_url(question), {"answer": "bulkhead", "action": "submit", "started_at": "1"}, **headers
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert 'id="drill"' in html
    assert MODEL_ANSWER in html
    attempt = Attempt.objects.get()
    assert response["HX-Push-Url"] == attempt.get_absolute_url()
    response = client.post(attempt.get_absolute_url() + "rate/", {"rating": "3"}, **headers)
    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert "Next review in" in response.content.decode()


def test_replayed_rating_does_not_create_a_second_review(client, question):
    attempt_url = submit(client, question)["Location"]
    client.post(attempt_url + "rate/", {"rating": "3"})
    card_before = Card.objects.get().fsrs
    response = client.post(attempt_url + "rate/", {"rating": "1"}, follow=True)
    assert "already rated this attempt" in response.content.decode()
    assert Review.objects.count() == 1
    assert Card.objects.get().fsrs == card_before


def test_rating_outside_one_to_four_is_400_with_message(client, question):
    attempt_url = submit(client, question)["Location"]
    for bad in ("7", "0", "good", ""):
        response = client.post(attempt_url + "rate/", {"rating": bad})
        assert response.status_code == 400
        assert "Rating must be 1 (Again), 2 (Hard), 3 (Good) or 4 (Easy)" in response.content.decode() or (
            "This field is required" in response.content.decode()
        )
    assert not Review.objects.exists()
    assert Attempt.objects.get().rated_at is None


def test_another_learners_attempt_is_404(client, django_user_model, question):
    attempt_url = submit(client, question)["Location"]
    other = django_user_model.objects.create_user("other", password="pw-123456-long")
    from django.test import Client

    stranger = Client()
    assert stranger.get(attempt_url).status_code == 404
    assert stranger.post(attempt_url + "rate/", {"rating": "3"}).status_code == 404
    stranger.force_login(other)
    assert stranger.get(attempt_url).status_code == 404
    assert not Review.objects.exists()


def test_timer_without_js_uses_started_at_field(client, question):
    page = client.get(question_url(question)).content.decode()
    started = re.search(r'name="started_at" value="(\d+)"', page).group(1)
    submit(client, question, started_at=str(int(started) - 65_000))
    assert 65_000 <= Attempt.objects.get().duration_ms < 75_000


def test_tampered_started_at_is_ignored(client, question):
    for bad in ("<script>", "9" * 40, "-5"):
        response = submit(client, question, started_at=bad)
        assert response.status_code == 302
    assert list(Attempt.objects.values_list("duration_ms", flat=True)) == [None, None, None]


def test_missing_or_unknown_action_is_a_plain_submit_or_a_clear_error(client, question):
    response = client.post(question_url(question), {"answer": "bulkhead"})
    assert response.status_code == 302
    response = client.post(question_url(question), {"answer": "bulkhead", "action": "hack"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_drills_home_lists_due_then_new_within_daily_limit(client, settings):
    settings.DRILLS_NEW_PER_DAY = 2
    questions = [make_question(f"q{i}") for i in range(4)]
    html = client.get(reverse("drills:home")).content.decode()
    assert questions[0].prompt in html
    assert questions[1].prompt in html
    assert questions[2].prompt not in html
    attempt_url = submit(client, questions[0])["Location"]
    client.post(attempt_url + "rate/", {"rating": "1"})
    html = client.get(reverse("drills:home")).content.decode()
    assert "New questions for today" in html
    assert questions[1].prompt in html
    assert questions[2].prompt not in html


def test_nav_shows_due_count(client, question):
    attempt_url = submit(client, question)["Location"]
    client.post(attempt_url + "rate/", {"rating": "1"})
    Card.objects.update(due="2000-01-01T00:00:00Z")
    html = client.get(reverse("drills:home")).content.decode()
    # A screen reader hears "1 due", not a bare number.
    assert re.search(r'<span class="badge"[^>]*>1<span class="visually-hidden"> due</span></span>', html)


def test_nav_due_count_is_one_query_and_survives_empty_tables(client, db, django_assert_max_num_queries):
    from django.test import RequestFactory

    from topics.drills.context_processors import due_badge

    request = RequestFactory().get("/")
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore

    request.user, request.session = AnonymousUser(), SessionStore()
    request.session["drills_learner"] = "abc"
    with django_assert_max_num_queries(2):  # session load + one COUNT
        assert due_badge(request)["due_count"]() == 0
    assert client.get(reverse("drills:home")).status_code == 200


def test_topic_drill_page_lists_questions_and_loads_statuses_after(client, question):
    shared = client.get(reverse("drills:topic_drill", args=["queueing"]))
    html = shared.content.decode()
    assert question.prompt in html
    assert shared["Cache-Control"] == "public, max-age=60"
    assert "csrfmiddlewaretoken" not in html
    assert f'<span id="status-{question.slug}"></span>' in html
    assert 'hx-get="/topics/queueing/drill-status/" hx-trigger="load"' in html
    assert '<noscript><a class="btn big" href="/drills/">Practise what is due</a></noscript>' in html

    statuses = client.get(reverse("drills:topic_drill_personal", args=["queueing"])).content.decode()
    assert "Practise next due" in statuses
    assert f'<span id="status-{question.slug}" class="pill" hx-swap-oob="true">New</span>' in statuses

    client.post(submit(client, question)["Location"] + "rate/", {"rating": "1"})  # Again: due within minutes
    statuses = client.get(reverse("drills:topic_drill_personal", args=["queueing"])).content.decode()
    assert re.search(
        rf'<span id="status-{question.slug}" class="pill ok" hx-swap-oob="true">Due in [^<]+</span>', statuses
    )
    assert client.get(reverse("drills:topic_drill", args=["queueing"])).content == shared.content


def test_statuses_of_visitors_without_an_identity_are_shared_and_a_learners_own_are_not(
    client, question, django_assert_max_num_queries
):
    url = reverse("drills:topic_drill_personal", args=["queueing"])
    first = Client().get(url).content
    with django_assert_max_num_queries(0):  # no cards to read: topic, statuses and plan come from the cache
        assert Client().get(url).content == first
    client.post(submit(client, question)["Location"] + "rate/", {"rating": "1"})
    assert "Due in" in client.get(url).content.decode()  # acting gave them an identity and their own card
    assert Client().get(url).content == first  # everyone else still sees it as new


def next_question_href(html: str) -> str:
    return re.search(r'<a class="btn" href="([^"]+)" data-next-question>Next question</a>', html)[1]


def test_next_question_after_rating_goes_straight_to_the_next_planned_question(client, question):
    following = make_question("following")
    response = submit(client, question)
    html = client.post(response["Location"] + "rate/", {"rating": "3"}, follow=True).content.decode()
    assert next_question_href(html) == question_url(following)


def test_next_question_after_rating_the_last_one_goes_to_the_overview(client, question):
    response = submit(client, question)
    html = client.post(response["Location"] + "rate/", {"rating": "1"}, follow=True).content.decode()
    assert next_question_href(html) == reverse("drills:home")


def test_next_question_link_is_right_in_the_htmx_fragment_too(client, question):
    following = make_question("following")
    response = submit(client, question)
    html = client.post(response["Location"] + "rate/", {"rating": "3"}, headers={"HX-Request": "true"}).content
    assert next_question_href(html.decode()) == question_url(following)


def test_answer_submissions_are_rate_limited_with_a_message(client, content, one_window):
    from topics.drills.views import ANSWERS_PER_MINUTE

    question = content.get(slug="traffic-spikes")
    url = question.get_absolute_url()
    client.get(url)
    statuses = [
        client.post(url, {"answer": f"attempt {n}", "action": "submit", "started_at": ""}).status_code
        for n in range(ANSWERS_PER_MINUTE + 1)
    ]
    assert 429 not in statuses[:ANSWERS_PER_MINUTE]
    assert statuses[-1] == 429
    refused = client.post(url, {"answer": "one more", "action": "submit", "started_at": ""})
    assert "answers in a minute" in refused.content.decode()


def test_answers_are_accepted_while_redis_is_down(client, content, redis_control):
    question = content.get(slug="traffic-spikes")
    redis_control.stop()
    response = client.post(
        question.get_absolute_url(), {"answer": "bulkheads and timeouts", "action": "submit", "started_at": ""}
    )
    assert response.status_code == 302


# The button's name is its visible text ("Again 1m", WCAG 2.5.3); the interval in words is its description.
RATING_BUTTON = re.compile(
    r'<button type="submit" name="rating" value="(\d)" class="rate rate-\d[^"]*"[^>]* data-interval="([^"]+)">'
    r'<span class="rate-label">(\w+)</span> <span class="rate-interval">([^<]+)</span>'
)
RATING_WORDS = re.compile(r'<span id="rate-when-(\d)">next review in ([^<]+)</span>')


def shown_intervals(html: str) -> dict[int, tuple[str, str, str]]:
    """{rating: (label, interval in words, short interval)} as the rating buttons show them."""
    words = {int(value): text for value, text in RATING_WORDS.findall(html)}
    shown = {}
    for value, short, label, visible in RATING_BUTTON.findall(html):
        assert visible == short
        shown[int(value)] = (label, words[int(value)], short)
    return shown


def rate_and_measure(client, attempt_url: str, rating: int) -> tuple[str, str]:
    """Rate, then the interval the card was actually scheduled for, short and in words."""
    assert client.post(attempt_url + "rate/", {"rating": str(rating)}).status_code == 302
    review = Review.objects.latest("reviewed_at")
    delta = review.card.due - review.reviewed_at
    return scheduling.short_interval(delta), scheduling.interval_words(delta)


def test_rating_buttons_show_the_interval_each_rating_schedules_for_a_new_card(client, question):
    for rating in (1, 2, 3, 4):
        Card.objects.all().delete()  # a new card every time
        attempt_url = submit(client, question)["Location"]
        shown = shown_intervals(client.get(attempt_url).content.decode())
        assert [label for label, _, _ in shown.values()] == ["Again", "Hard", "Good", "Easy"]
        assert shown[3][1:] == ("10 minutes", "10m")
        assert f'<span class="rate-interval">{shown[rating][2]}</span>' in client.get(attempt_url).content.decode()
        assert rate_and_measure(client, attempt_url, rating) == (shown[rating][2], shown[rating][1])


def test_rating_buttons_show_the_interval_each_rating_schedules_for_a_card_with_history(client, question):
    client.post(submit(client, question)["Location"] + "rate/", {"rating": "3"})
    now = timezone.now()
    history = scheduling.new_card(now - timedelta(days=60))
    for days_ago in (60, 59, 55, 40):
        history = scheduling.review(history, 3, now - timedelta(days=days_ago))
    seen = set()
    for rating in (1, 2, 3, 4):
        card = Card.objects.get()
        card.set_fsrs(history)
        card.save()
        attempt_url = submit(client, question)["Location"]
        shown = shown_intervals(client.get(attempt_url).content.decode())
        assert shown[2][2].endswith(("d", "mo")), shown  # days, not learning steps: the history counts
        assert rate_and_measure(client, attempt_url, rating) == (shown[rating][2], shown[rating][1])
        seen.add(shown[rating][2])
    assert len(seen) >= 3


def test_coverage_rubric_and_rating_come_before_the_long_model_answer(client, question):
    html = client.get(submit(client, question)["Location"]).content.decode()
    order = [html.index(marker) for marker in ("key points credited", 'name="ticked"', 'name="rating"', MODEL_ANSWER)]
    assert order == sorted(order)


def test_focus_goes_to_the_result_after_submit_and_to_the_outcome_after_rating(client, question):
    hx = {"HTTP_HX_REQUEST": "true"}
    html = client.post(question_url(question), {"answer": "bulkhead", "action": "submit"}, **hx).content.decode()
    assert re.search(r'<h2 id="result" class="result-heading" tabindex="-1" autofocus>', html)
    assert html.count("autofocus") == 1
    attempt_url = Attempt.objects.get().get_absolute_url()
    full = client.get(attempt_url).content.decode()  # without JS: the redirect's page autofocuses the result
    assert re.search(r'<h2 id="result"[^>]* autofocus>', full)

    rated = client.post(attempt_url + "rate/", {"rating": "3"}, **hx).content.decode()
    assert re.search(r'<div class="outcome" id="outcome"[^>]* tabindex="-1" autofocus>', rated)
    assert rated.count("autofocus") == 1  # the result heading no longer takes focus
    assert "You rated this Good" in rated


def test_rating_without_js_redirects_to_the_outcome(client, question):
    attempt_url = submit(client, question)["Location"]
    response = client.post(attempt_url + "rate/", {"rating": "2"})
    assert response["Location"] == attempt_url + "#outcome"
    html = client.get(attempt_url).content.decode()
    assert re.search(r'id="outcome"[^>]* autofocus>', html)


def heading_levels(html: str) -> list[int]:
    return [int(level) for level in re.findall(r"<h([1-6])\b", html)]


@pytest.mark.parametrize("answer", ["", "Shard by tenant, lease the jobs, dedupe by key."])
def test_design_prompt_answer_keeps_the_heading_outline_and_full_width_when_given_up(client, content, answer):
    """A design prompt's model answer has `##` phases; on the page they sit under "Model answer" (h3)
    as h4s, so the outline never jumps back up. Giving up shows it full width, not beside an empty card."""
    question = content.get(slug="design-job-scheduler")
    assert "<h2" in question.answer_html
    response = submit(client, question, answer=answer, action="give_up" if not answer else "submit")
    html = client.get(response["Location"]).content.decode()
    levels = heading_levels(html[html.index('id="result"') - 4 :])
    assert levels.count(4) >= 5  # the five phases
    assert all(later - earlier <= 1 for earlier, later in itertools.pairwise(levels))
    assert ('class="card your-answer"' in html) == bool(answer)
    assert ("You asked to see the answer without attempting it" in html) == (not answer)


def test_the_study_link_lands_on_the_heading_that_explains_the_question(client, content):
    question = content.get(slug="poison-messages")
    submit(client, question, answer="It always fails.")
    html = client.get(Attempt.objects.get().get_absolute_url()).content.decode()
    link = re.search(r'<a class="btn secondary" href="([^"]+)">Study: Core concepts</a>', html)
    assert link is not None
    assert link[1] == "/topics/queueing/core-concepts/#dead-letter-queues"
