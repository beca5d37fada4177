"""Issue #12: limits a visitor cannot reset for free, imports that cannot lock the site, and log-in throttling."""

import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from prepsite.accounts import SIGNUPS_PER_HOUR, login_failure_ceiling
from prepsite.visitor import ADDRESS_CEILING_TIMES
from tests.conftest import clear_rate_limits
from tests.drills.conftest import make_question
from topics.drills import services
from topics.drills.models import Attempt, Card, Review
from topics.drills.views import ANSWERS_PER_MINUTE, IMPORTS_PER_WINDOW

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.7"
PASSWORD = "correct horse battery staple"
LOCKOUT = "Too many failed log-in attempts for this account or from your network"


@pytest.fixture(autouse=True)
def _fresh_rate_limits(redis_conn):
    """Every test starts with no counts: the limits now key on the client address, shared by all tests."""
    clear_rate_limits()


def visitor(address: str = ADDRESS) -> Client:
    """A brand-new browser (no cookies) at the given address."""
    return Client(REMOTE_ADDR=address)


def answer(client: Client, question, text: str = "bulkheads and retry budgets", **extra):
    data = {"answer": text, "action": "submit", "started_at": "", **extra}
    return client.post(question.get_absolute_url(), data)


def upload(client: Client, content: bytes, name: str = "export.json"):
    return client.post(reverse("drills:import"), {"file": SimpleUploadedFile(name, content)})


def exported(question, *, address: str = "192.0.2.50") -> dict:
    """A real export: answer and rate the question in a browser of its own, then download the file."""
    client = visitor(address)
    attempt_url = answer(client, question)["Location"]
    client.post(attempt_url + "rate/", {"rating": "3", "ticked": ["0"]})
    return json.loads(client.get(reverse("drills:export")).content)


# 1. Limits keyed to what a visitor cannot mint for free --------------------------------------------


def test_one_visitors_answers_are_limited_with_429_and_message(one_window):
    question = make_question()
    learner = visitor()
    statuses = [answer(learner, question, f"attempt {n}").status_code for n in range(ANSWERS_PER_MINUTE)]
    assert statuses == [302] * ANSWERS_PER_MINUTE
    refused = answer(learner, question, "one too many")
    assert refused.status_code == 429
    assert f"That is {ANSWERS_PER_MINUTE} answers in a minute" in refused.content.decode()
    # Someone else behind the same address (a classroom's NAT) answers on a budget of their own (issue #25).
    assert answer(visitor(), question).status_code == 302


def test_fresh_cookies_at_one_address_meet_the_address_ceiling(one_window):
    question = make_question()
    ceiling = ANSWERS_PER_MINUTE * ADDRESS_CEILING_TIMES
    statuses = [answer(visitor(), question, f"attempt {n}").status_code for n in range(ceiling + 2)]
    assert statuses == [302] * ceiling + [429] * 2
    refused = answer(visitor(), question).content.decode()
    # The message names the address's budget, not one visitor's, and says how to get a budget of one's own.
    assert f"Your network sent {ceiling} answers this minute" in refused
    assert "Sign up (it is free)" in refused
    assert f"That is {ANSWERS_PER_MINUTE} answers" not in refused
    assert Attempt.objects.count() == ceiling
    assert answer(visitor("192.0.2.77"), question).status_code == 302  # another address is untouched


def test_answer_limit_counts_a_logged_in_learner_by_account_not_by_the_busy_address(one_window, django_user_model):
    question = make_question()
    for n in range(ANSWERS_PER_MINUTE * ADDRESS_CEILING_TIMES + 1):
        answer(visitor(), question, f"attempt {n}")
    assert answer(visitor(), question).status_code == 429
    member = visitor()
    member.force_login(django_user_model.objects.create_user("ada", password=PASSWORD))
    assert answer(member, question).status_code == 302


def test_signups_from_one_address_are_limited_with_429_and_message(one_window, django_user_model):
    def signup(n: int):
        data = {"username": f"user{n}", "password1": PASSWORD, "password2": PASSWORD}
        return visitor().post(reverse("signup"), data)

    statuses = [signup(n).status_code for n in range(SIGNUPS_PER_HOUR)]
    assert statuses == [302] * SIGNUPS_PER_HOUR
    refused = signup(SIGNUPS_PER_HOUR)
    assert refused.status_code == 429
    assert "Too many accounts were created from your network recently" in refused.content.decode()
    assert django_user_model.objects.count() == SIGNUPS_PER_HOUR


# 2. One import must not lock the database for everyone ----------------------------------------------


def review(moment: datetime, n: int = 0) -> dict:
    return {"reviewed_at": moment.isoformat(), "rating": 1 + n % 4, "duration_ms": 1000, "answer": "", "matched": []}


def doc_with_reviews(question, count: int) -> dict:
    data = exported(question)
    start = datetime.now(UTC) - timedelta(days=400)
    data["cards"][0]["reviews"] = [review(start + timedelta(minutes=n), n) for n in range(count)]
    return data


def test_an_import_over_the_review_bound_is_refused_with_400_naming_the_bound():
    question = make_question()
    data = doc_with_reviews(question, services.MAX_IMPORT_REVIEWS + 1)
    response = upload(visitor(), json.dumps(data).encode())
    assert response.status_code == 400
    assert "an import may hold at most 10,000 reviews" in response.content.decode()
    assert Card.objects.count() == 1  # only the exporting browser's own card


def test_an_import_over_the_card_bound_is_refused_with_400_naming_the_bound():
    question = make_question()
    data = exported(question)
    data["cards"] = data["cards"] * (services.MAX_IMPORT_CARDS + 1)
    response = upload(visitor(), json.dumps(data).encode())
    assert response.status_code == 400
    assert "an import may hold at most 1,000 cards" in response.content.decode()


def test_an_upload_over_the_size_bound_is_refused_with_400_naming_the_bound():
    response = upload(visitor(), b" " * (5 * 1024 * 1024 + 1))
    assert response.status_code == 400
    assert "larger than 5 MB" in response.content.decode()


def test_imports_are_limited_per_visitor_and_per_address_with_429_and_message(one_window):
    content = json.dumps(exported(make_question())).encode()
    importer = visitor()
    statuses = [upload(importer, content).status_code for _ in range(IMPORTS_PER_WINDOW)]
    assert statuses == [302] * IMPORTS_PER_WINDOW
    refused = upload(importer, content)
    assert refused.status_code == 429
    assert f"That is {IMPORTS_PER_WINDOW} imports in 10 minutes" in refused.content.decode()
    others = [upload(visitor(), content).status_code for _ in range(IMPORTS_PER_WINDOW * ADDRESS_CEILING_TIMES)]
    # The address's ceiling, which the first importer's six tries (the refused one too) already spent from.
    assert others.count(302) == IMPORTS_PER_WINDOW * ADDRESS_CEILING_TIMES - (IMPORTS_PER_WINDOW + 1)
    assert others[-1] == 429
    at_ceiling = upload(visitor(), content).content.decode()
    assert f"Your network imported {IMPORTS_PER_WINDOW * ADDRESS_CEILING_TIMES} files in 10 minutes" in at_ceiling
    assert "Sign up (it is free)" in at_ceiling


@pytest.mark.django_db(transaction=True)
def test_a_large_import_is_written_in_transactions_of_bounded_size():
    """No single transaction may hold SQLite's write lock for a whole big import."""
    question = make_question()
    data = doc_with_reviews(question, 1_234)
    rows_per_transaction: dict = {}
    holders = []  # keeps each transaction's Atomic alive, so no two share an id()

    def count_review_rows(execute, sql, params, many, context):
        if sql.startswith('INSERT INTO "drills_review"'):
            columns = sql.split("(", 1)[1].split(")", 1)[0].count(",") + 1
            outer = context["connection"].atomic_blocks[0] if context["connection"].in_atomic_block else None
            holders.append(outer)
            # SQLite binds one value per column per row; PostgreSQL's bulk insert binds one array per column.
            rows = len(params[0]) if params and isinstance(params[0], list | tuple) else len(params) // columns
            rows_per_transaction[id(outer)] = rows_per_transaction.get(id(outer), 0) + rows
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count_review_rows):
        response = upload(visitor(), json.dumps(data).encode())
    assert response.status_code == 302
    assert sum(rows_per_transaction.values()) == 1_234
    assert None not in rows_per_transaction  # every write inside a transaction
    assert max(rows_per_transaction.values()) <= services.IMPORT_BATCH
    assert len(rows_per_transaction) >= 3


@pytest.fixture
def locked_database(monkeypatch):
    """Another process holds SQLite's write lock (as a long import did); this connection waits only briefly."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's single write lock")
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.2)
    connection.close()
    holder = sqlite3.connect(connection.settings_dict["NAME"], timeout=0, isolation_level=None)

    class Lock:
        def take(self) -> None:
            holder.execute("BEGIN IMMEDIATE")

        def release(self) -> None:
            if holder.in_transaction:
                holder.execute("ROLLBACK")

    lock = Lock()
    yield lock
    lock.release()
    holder.close()
    connection.close()


BUSY = "The site is busy right now, so this was not saved. Please try again in a few seconds."


@pytest.mark.django_db(transaction=True)
def test_a_busy_database_answers_503_with_a_message_never_500(locked_database):
    question = make_question()
    rater = visitor("192.0.2.60")
    attempt_url = answer(rater, question)["Location"]
    content = json.dumps(exported(question)).encode()
    locked_database.take()
    answering = visitor().post(question.get_absolute_url(), {"answer": "bulkheads", "action": "submit"})
    rating = rater.post(attempt_url + "rate/", {"rating": "3"})
    importing = upload(visitor(), content)
    for response in (answering, rating, importing):
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        assert BUSY in response.content.decode()
    locked_database.release()
    assert answer(visitor(), question).status_code == 302
    assert rater.post(attempt_url + "rate/", {"rating": "3"}).status_code == 302


EDGE_CASES = {
    # Accepted: the export of what was imported must import again, unchanged.
    "largest values": ({"card_id": 10**20 - 1}, {"duration_ms": services.MAX_DURATION_MS, "ticked": [0, 49]}, None),
    "smallest values": ({"card_id": 0}, {"duration_ms": 0, "ticked": [], "matched": [], "answer": ""}, None),
    "far-east offset, long answer": (
        {},
        {
            "reviewed_at": (datetime.now(UTC) - timedelta(hours=1)).astimezone(timezone(timedelta(hours=14))),
            "answer": "🙂\r\n" + "x" * 19_997,
        },
        None,
    ),
    # Refused: each was accepted before, and its export was then refused (or failed on PostgreSQL).
    "float card id": ({"card_id": 1e300}, {}, "FSRS card_id must be a whole number"),
    "text card id": ({"card_id": "123456789012345678901234567890"}, {}, "FSRS card_id must be a whole number"),
    "boolean duration": ({}, {"duration_ms": True}, "duration_ms must be a whole number"),
    "boolean ticked index": ({}, {"ticked": [True]}, "expected a list of small integers"),
    "NUL in answer": ({}, {"answer": "a\x00b"}, "answer must be text without NUL characters"),
}


@pytest.mark.parametrize("case", EDGE_CASES)
def test_an_accepted_import_exports_a_file_the_importer_accepts_again(case):
    fsrs_edits, review_edits, refusal = EDGE_CASES[case]
    question = make_question()
    data = exported(question)
    data["cards"][0]["fsrs"].update(fsrs_edits)
    edits = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in review_edits.items()}
    data["cards"][0]["reviews"][0].update(edits)
    first = visitor("198.51.100.10")
    response = upload(first, json.dumps(data).encode())
    if refusal:
        assert response.status_code == 400
        assert refusal in response.content.decode()
        return
    assert response.status_code == 302
    once = first.get(reverse("drills:export")).content
    second = visitor("198.51.100.11")
    again = upload(second, once)
    assert again.status_code == 302, again.content.decode()
    assert json.loads(second.get(reverse("drills:export")).content)["cards"] == json.loads(once)["cards"]


# 3. Inputs that were 500s ----------------------------------------------------------------------------


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
@pytest.mark.parametrize("field", ["fsrs.due", "fsrs.last_review", "created_at", "reviewed_at"])
def test_import_dates_that_overflow_in_utc_are_refused_with_400(field, moment):
    data = exported(make_question())
    card = data["cards"][0]
    if field.startswith("fsrs."):
        card["fsrs"][field.removeprefix("fsrs.")] = moment
    elif field == "created_at":
        card["created_at"] = moment
    else:
        card["reviews"][0]["reviewed_at"] = moment
    response = upload(visitor(), json.dumps(data).encode())
    assert response.status_code == 400
    assert "is out of range in UTC" in response.content.decode()
    assert Review.objects.count() == 1


@pytest.mark.parametrize("started_at", ["²", "1²", "³³³", "１２３"])
def test_a_non_ascii_digit_timer_costs_only_the_duration_never_a_500(started_at):
    question = make_question()
    response = answer(visitor(), question, started_at=started_at)
    assert response.status_code == 302
    assert Attempt.objects.get().duration_ms is None


def test_an_imported_answer_with_a_nul_byte_is_refused_with_400_on_every_database():
    data = exported(make_question())
    data["cards"][0]["reviews"][0]["answer"] = "retry\x00budget"
    response = upload(visitor(), json.dumps(data).encode())
    assert response.status_code == 400
    assert "card 1, review 1: answer must be text without NUL characters" in response.content.decode()


# 4. Log-in throttling (django-axes) -----------------------------------------------------------------


def log_in(client: Client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_repeated_wrong_passwords_lock_the_account_even_for_the_right_password(django_user_model):
    django_user_model.objects.create_user("alice", password=PASSWORD)
    attacker = visitor("198.51.100.1")
    statuses = [log_in(attacker, "alice", f"guess {n}").status_code for n in range(6)]
    assert statuses == [200, 200, 200, 200, 429, 429]
    refused = log_in(visitor("198.51.100.1"), "alice", PASSWORD)
    assert refused.status_code == 429
    html = refused.content.decode()
    assert LOCKOUT in html
    assert "logging in is paused for 15 minutes" in html
    assert "<h1>Log in</h1>" in html  # our own page, not a bare 403
    assert "_auth_user_id" not in refused.wsgi_request.session
    # Locked at the guesser's address only: a stranger cannot lock the owner out (issue #25).
    assert log_in(visitor("192.0.2.99"), "alice", PASSWORD).status_code == 302


def test_another_account_from_another_address_still_logs_in(django_user_model):
    django_user_model.objects.create_user("alice", password=PASSWORD)
    django_user_model.objects.create_user("bob", password=PASSWORD)
    for n in range(6):
        log_in(visitor("198.51.100.1"), "alice", f"guess {n}")
    bob = visitor("192.0.2.20")
    response = log_in(bob, "bob", PASSWORD)
    assert response.status_code == 302
    assert bob.session["_auth_user_id"] == str(django_user_model.objects.get(username="bob").pk)


def test_one_address_guessing_many_accounts_meets_the_address_ceiling(django_user_model, one_window):
    django_user_model.objects.create_user("carol", password=PASSWORD)
    for n in range(login_failure_ceiling() - 1):  # a few typos each by a classroom behind one address
        log_in(visitor("198.51.100.3"), f"someone{n}", "guess")
    assert log_in(visitor("198.51.100.3"), "carol", PASSWORD).status_code == 302
    log_in(visitor("198.51.100.3"), "someone-else", "guess")
    response = log_in(visitor("198.51.100.3"), "carol", PASSWORD)
    assert response.status_code == 429
    assert LOCKOUT in response.content.decode()
    assert log_in(visitor("192.0.2.30"), "carol", PASSWORD).status_code == 302


def test_logging_in_to_ones_own_account_does_not_reset_failures_on_another(django_user_model):
    django_user_model.objects.create_user("alice", password=PASSWORD)
    django_user_model.objects.create_user("mallory", password=PASSWORD)
    attacker = visitor("198.51.100.4")
    assert [log_in(attacker, "alice", f"guess {n}").status_code for n in range(4)] == [200] * 4
    assert log_in(visitor("198.51.100.4"), "mallory", PASSWORD).status_code == 302
    assert log_in(attacker, "alice", "guess 5").status_code == 429


def test_the_lockout_ends_after_the_cool_off(django_user_model):
    from axes.models import AccessAttempt

    django_user_model.objects.create_user("alice", password=PASSWORD)
    for n in range(5):
        log_in(visitor("198.51.100.5"), "alice", f"guess {n}")
    assert log_in(visitor("198.51.100.5"), "alice", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=datetime.now(UTC) - timedelta(minutes=16))
    assert log_in(visitor("198.51.100.5"), "alice", PASSWORD).status_code == 302


def test_signup_still_logs_the_new_account_in(django_user_model):
    client = visitor()
    data = {"username": "newcomer", "password1": PASSWORD, "password2": PASSWORD}
    response = client.post(reverse("signup"), data)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(django_user_model.objects.get(username="newcomer").pk)


def test_system_checks_stay_clean_at_warning_level():
    call_command("check", fail_level="WARNING")


def test_a_whole_ipv6_64_counts_as_one_address_for_log_in_failures(django_user_model, one_window):
    django_user_model.objects.create_user("dave", password=PASSWORD)
    for n in range(1, login_failure_ceiling() + 1):
        log_in(visitor(f"2001:db8:1:2::{n}"), f"someone{n}", "guess")
    assert log_in(visitor("2001:db8:1:2:ffff::1"), "dave", PASSWORD).status_code == 429
    assert log_in(visitor("2001:db8:1:3::1"), "dave", PASSWORD).status_code == 302


def test_axes_adds_no_queries_to_other_pages(settings):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(db) as captured:
            assert visitor().get(reverse("drills:home")).status_code == 200
        return len(captured)

    with_axes = queries()
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if not name.startswith("axes.")]
    assert queries() == with_axes
