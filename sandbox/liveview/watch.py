"""A signed watch token: the live view's polls prove ownership without a session or database lookup.

The page gives its owner a token for the experiment; each poll carries it, so the poll path costs one
Redis round trip instead of a session read and an ownership query. Like a signed URL, it lets whoever
holds it watch (not act on) that one experiment, for a day.
"""

from django.core import signing

SALT = "sandbox.liveview.watch"
MAX_AGE_S = 24 * 3600


def watch_token(experiment_id: int) -> str:
    return signing.TimestampSigner(salt=SALT).sign(str(experiment_id))


def allows(token: str, experiment_id: int) -> bool:
    if not token or len(token) > 200:
        return False
    try:
        return signing.TimestampSigner(salt=SALT).unsign(token, max_age=MAX_AGE_S) == str(experiment_id)
    except signing.BadSignature:
        return False
