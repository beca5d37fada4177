"""The learner's path: a plan to the interview date, level-ordered new drills, Continue, and the move to an account."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from topics.drills import services
from topics.drills.models import Card, LearnerPlan
from topics.models import Question, ReadingPosition, SectionUnderstood

pytestmark = pytest.mark.django_db


def make_plan(client, *, days: int = 14, level: str = "staff", hide_junior: bool = False, tz: str = "UTC"):
    date = (timezone.now().date() + timedelta(days=days)).isoformat()
    data = {"interview_date": date, "level": level, "time_zone": tz}
    if hide_junior:
        data["hide_junior"] = "on"
    return client.post("/drills/plan/", data)


def test_a_plan_to_a_date_fourteen_days_out_shows_day_1_of_14_on_home(client, queueing):
    assert make_plan(client).status_code == 302
    plan = LearnerPlan.objects.get()
    assert (plan.level, plan.interview_date - plan.started_on) == ("staff", timedelta(days=14))
    html = client.get("/").content.decode()
    assert "Day 1 of 14" in html
    assert 'class="btn big continue"' in html


def test_the_day_by_day_plan_reads_every_chapter_then_leaves_review_days_and_a_mock(client, queueing):
    make_plan(client)
    path = services.learner_path(learner=_learner(client))
    assert [day.number for day in path.days] == list(range(1, 15))
    planned = [c.section.pk for day in path.days for c in day.chapters]
    assert sorted(planned) == sorted(queueing.sections.values_list("pk", flat=True))
    assert [day.review_only for day in path.days[-2:]] == [True, True]
    assert path.days[-1].mock
    assert not any(day.mock for day in path.days[:-1])
    assert all(day.preset for day in path.days[:-2])
    assert all(1 <= day.new_drills <= 10 for day in path.days[:-2])


def _learner(client):
    from prepsite.visitor import Visitor

    return Visitor(anon_id=client.session["visitor"])


@pytest.mark.parametrize(
    ("date", "message"),
    [("", "This field is required"), ("2001-01-01", "Pick a day after today"), ("not-a-date", "Enter a valid date")],
)
def test_a_bad_interview_date_is_refused_with_400_and_says_why(client, queueing, date, message):
    response = client.post("/drills/plan/", {"interview_date": date, "level": "staff"})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not LearnerPlan.objects.exists()


def test_an_unknown_level_is_refused_and_an_unknown_time_zone_falls_back_to_utc(client, queueing):
    assert make_plan(client, level="principal").status_code == 400
    assert make_plan(client, tz="Mars/Olympus").status_code == 302
    assert LearnerPlan.objects.get().time_zone == "UTC"


def test_a_staff_candidate_gets_staff_questions_first_and_junior_can_be_hidden(client, queueing):
    make_plan(client, level="staff")
    new = services.drill_plan(learner=_learner(client)).new
    assert [q.level for q in new] == ["staff"] * len(new)
    assert len(new) == 10
    new_list = client.get("/drills/").content.decode().split("New questions for today")[1].split("</ol>")[0]
    assert "level-staff" in new_list
    assert "level-junior" not in new_list
    assert "level-senior" not in new_list
    make_plan(client, level="junior", hide_junior=True)
    new = services.drill_plan(learner=_learner(client)).new
    assert new
    assert Question.Level.JUNIOR not in {q.level for q in new}
    assert new[0].level == "senior"


def test_reading_position_is_saved_per_chapter_and_continue_lands_on_that_heading(client, queueing):
    section = queueing.sections.in_order()[1]
    heading = section.toc[0]
    url = f"/topics/queueing/sections/{section.slug}/position/"
    assert client.post(url, {"heading": heading["id"]}).status_code == 204
    assert client.post(url, {"heading": "no-such-heading"}).status_code == 400
    assert client.post(url, {}).status_code == 400
    assert client.get(url).status_code == 405
    assert ReadingPosition.objects.get().heading == heading["id"]
    html = client.get("/").content.decode()
    assert f'href="{section.get_absolute_url()}#{heading["id"]}"' in html
    assert "Continue reading" in html


def test_a_chapter_marked_understood_no_longer_resumes(client, queueing):
    section = queueing.sections.in_order()[1]
    heading = section.toc[0]["id"]
    client.post(f"/topics/queueing/sections/{section.slug}/position/", {"heading": heading})
    client.post(f"/topics/queueing/sections/{section.slug}/understood/", {"understood": "1"})
    assert f"#{heading}" not in client.get("/").content.decode()
    assert SectionUnderstood.objects.count() == 1


def test_sign_up_keeps_the_plan_the_reading_position_and_the_ratings(client, queueing):
    make_plan(client, level="staff")
    section = queueing.sections.in_order()[2]
    client.post(f"/topics/queueing/sections/{section.slug}/position/", {"heading": section.toc[0]["id"]})
    question = Question.objects.filter(level="staff").first()
    attempt = client.post(question.get_absolute_url(), {"answer": "no idea", "action": "submit", "started_at": ""})
    client.post(attempt["Location"] + "rate/", {"rating": "2"})
    assert Card.objects.filter(user__isnull=True).count() == 1
    response = client.post(
        "/accounts/signup/",
        {"username": "newcomer", "password1": "a-long-Passphrase-42", "password2": "a-long-Passphrase-42"},
    )
    assert response.status_code == 302
    user = get_user_model().objects.get(username="newcomer")
    assert LearnerPlan.objects.get().user == user
    assert ReadingPosition.objects.get().user == user
    assert Card.objects.get().user == user
    assert Card.objects.get().reviews.get().rating == 2
    assert "Day 1 of 14" in client.get("/").content.decode()


def test_visitors_only_see_their_own_plan(client, queueing):
    from django.test import Client

    make_plan(client)
    other = Client()
    html = other.get("/").content.decode()
    assert "Day 1 of" not in html
    assert "When is your interview?" in html
    assert other.get("/drills/plan/").status_code == 200


def test_an_unrated_answer_is_offered_back_until_it_is_rated(client, queueing):
    question = queueing.questions.get(slug="poison-messages")
    attempt_url = client.post(question.get_absolute_url(), {"answer": "retry it", "action": "submit"})["Location"]
    html = client.get(question.get_absolute_url()).content.decode()
    assert "You have an unrated answer" in html
    assert f'href="{attempt_url}#rubric"' in html
    client.post(attempt_url + "rate/", {"rating": "3"})
    assert "You have an unrated answer" not in client.get(question.get_absolute_url()).content.decode()


def test_listens_for_phrases_stay_hidden_until_the_answer_is_rated(client, queueing):
    question = queueing.questions.get(slug="poison-messages")
    attempt_url = client.post(question.get_absolute_url(), {"answer": "retry it", "action": "submit"})["Location"]
    assert "listens for" not in client.get(attempt_url).content.decode()
    client.post(attempt_url + "rate/", {"rating": "1"})
    assert "listens for" in client.get(attempt_url).content.decode()
