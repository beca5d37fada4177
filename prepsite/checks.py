"""The project's own system checks: production must not run on the development secret key."""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


def dev_key_in_production() -> bool:
    """DEBUG is off (production, by this project's convention) and the key is the built-in development one."""
    return not settings.DEBUG and settings.SECRET_KEY == settings.DEV_SECRET_KEY


DEV_KEY_MESSAGE = (
    "DJANGO_SECRET_KEY is not set, so the site would sign sessions, CSRF tokens and the Lab's watch tokens "
    "with the development key written in prepsite/settings.py: anyone could forge them."
)
DEV_KEY_HINT = (
    'Set DJANGO_SECRET_KEY to a long random value (python -c "import secrets; print(secrets.token_urlsafe(50))"), '
    "or DJANGO_DEBUG=1 on a development machine."
)


@checks.register(checks.Tags.security, deploy=True)
def secret_key_is_not_the_development_one(app_configs, **kwargs) -> list[checks.CheckMessage]:
    if dev_key_in_production():
        return [checks.Error(DEV_KEY_MESSAGE, hint=DEV_KEY_HINT, id="prepsite.E001")]
    return []


def refuse_development_key() -> None:
    """Called by the web process before it serves anything (prepsite.wsgi)."""
    if dev_key_in_production():
        raise ImproperlyConfigured(f"{DEV_KEY_MESSAGE} {DEV_KEY_HINT}")
