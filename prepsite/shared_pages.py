"""Pages that are the same for every visitor: rendered once per process, then served from memory.

The topic and drill pages are the heaviest and most read pages. Everything personal on them (marks,
statuses, the due badge, the account links, CSRF tokens) comes from a small fragment that htmx
loads after the page, so the document itself is identical for everyone: any proxy may cache it, and
it is gzipped once when cached (safe from BREACH: it holds no secret and echoes no input).
"""

import gzip
import hashlib
import re
from collections.abc import Callable

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.cache import get_conditional_response, patch_cache_control, patch_vary_headers

# Another process's `load_content` shows here within this long; the loading process clears at once.
TTL_SECONDS = 60
ACCEPTS_GZIP = re.compile(r"\bgzip\b")


def shared_page(request: HttpRequest, key: str, template: str, context: Callable[[], dict]) -> HttpResponse:
    """The page rendered without a request (so nothing personal can leak in), served from memory.

    `context` is called only on a cache miss; templates see `shared` and render placeholders.
    """
    cache = caches["pages"]
    entry = cache.get(key)
    if entry is None:
        body = render_to_string(template, {**context(), "shared": True, "site_name": settings.SITE_NAME}).encode()
        entry = (body, gzip.compress(body, mtime=0), hashlib.blake2b(body, digest_size=12).hexdigest())
        cache.set(key, entry, TTL_SECONDS)
    body, gzipped, digest = entry
    if ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", "")):
        # Each encoding is its own representation, so each gets its own strong ETag.
        response, etag = HttpResponse(gzipped, headers={"Content-Encoding": "gzip"}), f'"{digest}-gzip"'
    else:
        response, etag = HttpResponse(body), f'"{digest}"'
    response["ETag"] = etag
    patch_vary_headers(response, ["Accept-Encoding"])
    patch_cache_control(response, public=True, max_age=TTL_SECONDS)
    return get_conditional_response(request, etag=etag, response=response)


def shared_pages_clear() -> None:
    caches["pages"].clear()
