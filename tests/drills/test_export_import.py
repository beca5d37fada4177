import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from prepsite.visitor import ANON_KEY
from tests.drills.conftest import make_question
from topics.drills.models import Card, Review

pytestmark = pytest.mark.django_db


def drill(client, question, rating: int) -> None:
    url = reverse("drills:question", args=[question.topic.slug, question.slug])
    attempt_url = client.post(url, {"answer": "bulkhead & <b>bold</b>", "action": "submit"})["Location"]
    client.post(attempt_url + "rate/", {"rating": str(rating), "ticked": ["0"]})


def upload(client, content: bytes, name: str = "export.json"):
    return client.post(reverse("drills:import"), {"file": SimpleUploadedFile(name, content)}, follow=True)


def test_export_then_import_round_trips_and_reimport_does_not_duplicate(client):
    first, second = make_question("first"), make_question("second")
    drill(client, first, 3)
    drill(client, second, 1)
    response = client.get(reverse("drills:export"))
    assert response["Content-Disposition"].startswith("attachment;")
    exported = response.content
    data = json.loads(exported)
    assert data["format"] == "queue-prep-drills"
    assert data["version"] == 1
    assert len(data["cards"]) == 2

    browser = Client()
    result = upload(browser, exported)
    assert "Imported 2 questions: 2 new cards, 2 new reviews" in result.content.decode()
    mine = Card.objects.filter(anon_id=browser.session[ANON_KEY])
    assert mine.count() == 2
    assert Review.objects.filter(card__in=mine).count() == 2
    again = json.loads(browser.get(reverse("drills:export")).content)
    assert again["cards"] == data["cards"]

    result = upload(browser, exported)
    assert "0 new cards, 0 new reviews" in result.content.decode()
    assert Review.objects.filter(card__in=mine).count() == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe binary", "not valid JSON"),
        (b'{"hello": "world"}', "not a Queue Prep drills export"),
        (b"[1, 2, 3]", "not a Queue Prep drills export"),
        (b'{"format": "queue-prep-drills", "version": 99, "cards": []}', "Unsupported export version 99"),
        (b'{"format": "queue-prep-drills", "version": 1, "cards": {}}', "no “cards” list"),
        (
            b'{"format": "queue-prep-drills", "version": 1, "cards": [{"topic": "queueing", "question": "nope"}]}',
            "unknown question &#x27;nope&#x27;",
        ),
    ],
)
def test_malformed_or_foreign_import_file_is_rejected_with_clear_message(client, content, message):
    make_question("first")
    response = upload(client, content)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Card.objects.exists()


def test_import_rejects_bad_rating_without_writing_anything(client):
    question = make_question("first")
    drill(client, question, 3)
    data = json.loads(client.get(reverse("drills:export")).content)
    data["cards"][0]["reviews"][0]["rating"] = 7
    other = Client()
    response = upload(other, json.dumps(data).encode())
    assert response.status_code == 400
    assert "rating must be 1, 2, 3 or 4" in response.content.decode()
    assert Card.objects.count() == 1


@pytest.mark.parametrize(
    "fsrs",
    [
        "not a dict",
        {
            "card_id": 1,
            "state": 99,
            "step": 0,
            "stability": None,
            "difficulty": None,
            "due": "2026-01-01T00:00:00+00:00",
            "last_review": None,
        },
        {
            "card_id": 1,
            "state": 3,
            "step": None,
            "stability": None,
            "difficulty": None,
            "due": "2026-01-01T00:00:00+00:00",
            "last_review": "2026-01-01T00:00:00+00:00",
        },
        {
            "card_id": 1,
            "state": 1,
            "step": "x",
            "stability": None,
            "difficulty": None,
            "due": "2026-01-01T00:00:00+00:00",
            "last_review": None,
        },
        {
            "card_id": 1,
            "state": 1,
            "step": 0,
            "stability": None,
            "difficulty": None,
            "due": "2026-01-01T00:00:00",
            "last_review": None,
        },
    ],
)
def test_import_rejects_unusable_fsrs_state(client, fsrs):
    make_question("first")
    doc = {
        "format": "queue-prep-drills",
        "version": 1,
        "cards": [{"topic": "queueing", "question": "first", "fsrs": fsrs}],
    }
    response = upload(client, json.dumps(doc).encode())
    assert response.status_code == 400
    assert "card 1:" in response.content.decode()
    assert not Card.objects.exists()


def test_import_page_renders_and_requires_a_file(client):
    assert client.get(reverse("drills:import")).status_code == 200
    response = client.post(reverse("drills:import"), {})
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()


def exported_doc(client) -> dict:
    question = make_question("first")
    drill(client, question, 3)
    return json.loads(client.get(reverse("drills:export")).content)


@pytest.mark.parametrize(
    ("constant", "message"),
    [
        ("NaN", "contains NaN, which is not a number"),
        ("Infinity", "contains Infinity, which is not a number"),
        ("-Infinity", "contains -Infinity, which is not a number"),
        ("1e999", "the number 1e999, which is too large"),
    ],
)
def test_import_rejects_non_finite_fsrs_numbers_with_400_not_500(client, constant, message):
    text = json.dumps(exported_doc(client))
    text = text.replace('"stability": ', f'"stability": {constant}, "was": ', 1)
    response = upload(Client(), text.encode())
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Card.objects.count() == 1


def test_import_rejects_non_finite_stability_even_when_data_bypasses_the_json_reader(client):
    from topics.drills import services

    data = exported_doc(client)
    data["cards"][0]["fsrs"]["stability"] = float("nan")
    with pytest.raises(services.ImportRejected, match="stability must be a finite number"):
        services.parse_export(data)


@pytest.mark.parametrize("field", ["question", "topic"])
@pytest.mark.parametrize("value", [["a"], {"a": 1}, 7])
def test_import_requires_topic_and_question_to_be_text(client, field, value):
    data = exported_doc(client)
    data["cards"][0][field] = value
    response = upload(Client(), json.dumps(data).encode())
    assert response.status_code == 400
    assert "“topic” and “question” must be text" in response.content.decode()


def test_import_rejects_an_integer_with_thousands_of_digits_with_400(client):
    data = exported_doc(client)
    text = json.dumps(data).replace('"reps": 1', '"reps": ' + "9" * 5000, 1)
    assert "9" * 5000 in text
    response = upload(Client(), text.encode())
    assert response.status_code == 400
    assert "5,000-digit number" in response.content.decode()


def test_import_rejects_a_list_as_rating_with_400(client):
    data = exported_doc(client)
    data["cards"][0]["reviews"][0]["rating"] = [3]
    response = upload(Client(), json.dumps(data).encode())
    assert response.status_code == 400
    assert "rating must be 1, 2, 3 or 4" in response.content.decode()


@pytest.mark.parametrize(
    ("reviewed_at", "message"),
    [
        ("2999-01-01T00:00:00+00:00", "review date 2999-01-01 is in the future"),
        ("1999-12-31T00:00:00+00:00", "review date 1999-12-31 is before 2000"),
    ],
)
def test_import_rejects_review_dates_in_the_future_or_before_2000(client, reviewed_at, message):
    data = exported_doc(client)
    data["cards"][0]["reviews"][0]["reviewed_at"] = reviewed_at
    response = upload(Client(), json.dumps(data).encode())
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Review.objects.count() == 1


def test_import_rejects_fsrs_last_review_in_the_future(client):
    data = exported_doc(client)
    data["cards"][0]["fsrs"]["last_review"] = "2999-01-01T00:00:00+00:00"
    response = upload(Client(), json.dumps(data).encode())
    assert response.status_code == 400
    assert "FSRS last_review: review date 2999-01-01 is in the future" in response.content.decode()


def test_import_rejects_answer_with_lone_surrogate_with_400(client):
    data = exported_doc(client)
    text = json.dumps(data).replace('"answer": "', '"answer": "\\ud800', 1)
    response = upload(Client(), text.encode())
    assert response.status_code == 400
    assert "answer must be text" in response.content.decode()
