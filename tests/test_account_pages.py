"""The account pages as issue #23 item 8 asks: back to the page you were on, honest about password resets."""

import pytest

pytestmark = pytest.mark.django_db


def test_log_in_log_out_and_sign_up_return_to_the_page_they_were_opened_from(client, django_user_model):
    """Issue #23 item 8: the nav's links carry the current page; the log-in page says there is no password reset."""
    html = client.get("/drills/progress/").content.decode()
    assert 'href="/accounts/login/?next=/drills/progress/"' in html
    login_page = client.get("/accounts/login/?next=/drills/progress/").content.decode()
    assert "There is no password reset" in login_page
    response = client.post(
        "/accounts/signup/?next=/drills/progress/",
        {"username": "back", "password1": "a-long-Passphrase-42", "password2": "a-long-Passphrase-42"},
    )
    assert response["Location"] == "/drills/progress/"
    welcome = client.get("/drills/progress/").content.decode()
    assert "chapters marked" in welcome
    assert "Lab experiments" in welcome
    assert 'name="next" value="/drills/progress/"' in welcome  # log out comes back here too
    assert client.post("/accounts/logout/", {"next": "/drills/progress/"})["Location"] == "/drills/progress/"
    offsite = client.post(
        "/accounts/signup/?next=https://evil.example/",
        {"username": "away", "password1": "a-long-Passphrase-42", "password2": "a-long-Passphrase-42"},
    )
    assert offsite["Location"] == "/drills/"
