"""Merge anonymous drill progress into the account the moment a visitor logs in."""

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from topics.drills.learner import ANON_KEY, Learner
from topics.drills.services import learner_merge


@receiver(user_logged_in, dispatch_uid="drills_merge_anonymous_progress")
def merge_anonymous_progress(sender, request, user, **kwargs) -> None:
    session = getattr(request, "session", None)
    # login() cycles the session key but keeps the data, so the anonymous identity is still here.
    anon_key = session.pop(ANON_KEY, None) if session is not None else None
    if anon_key:
        learner_merge(source=Learner(session_key=anon_key), target=Learner(user=user))
