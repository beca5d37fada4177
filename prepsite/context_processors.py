from django.conf import settings
from django.http import HttpRequest

# Pages a log-in, log-out or sign-up should not send the visitor back to.
NOT_BACK_TO = ("/accounts/",)


def site(request: HttpRequest) -> dict:
    return {"site_name": settings.SITE_NAME, "here": here(request)}


def here(request: HttpRequest) -> str:
    """The page the visitor is on, for log-in/out and sign-up to return to (a fragment asks for its page's URL)."""
    htmx = getattr(request, "htmx", None)
    path = (htmx.current_url_abs_path if htmx else None) or request.get_full_path()
    return "" if path.startswith(NOT_BACK_TO) else path
