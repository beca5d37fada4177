"""Who is drilling: the logged-in user, else the anonymous session (created when missing)."""

from dataclasses import dataclass

from django.http import HttpRequest

# The anonymous identity lives in the session *data*, which survives the key cycling that
# django.contrib.auth.login() does, so the login signal can still find the anonymous rows.
ANON_KEY = "drills_learner"


@dataclass(frozen=True)
class Learner:
    user: object | None = None
    session_key: str = ""

    def lookup(self) -> dict:
        if self.user is not None:
            return {"user": self.user}
        return {"user__isnull": True, "session_key": self.session_key}

    def owner(self) -> dict:
        """Field values for a new row owned by this learner."""
        if self.user is not None:
            return {"user": self.user, "session_key": ""}
        return {"user": None, "session_key": self.session_key}


def learner_for(request: HttpRequest, *, create: bool = True) -> Learner | None:
    """The request's learner; with create=False, None for a visitor who has no session yet."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return Learner(user=user)
    session = request.session
    key = session.get(ANON_KEY)
    if key:
        return Learner(session_key=key)
    if not create:
        return None
    if session.session_key is None:
        session.save()
    session[ANON_KEY] = session.session_key
    return Learner(session_key=session.session_key)
