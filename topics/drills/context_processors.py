"""The navigation's "N due" badge, contributed to every page through settings.TEMPLATES."""

from django.db import DatabaseError
from django.http import HttpRequest

from prepsite.visitor import visitor_for
from topics.drills.services import due_count


def drills_due_count(request: HttpRequest):
    """A callable the template calls only if it shows the badge: one COUNT query, never an error."""
    cache: list[int] = []

    def count() -> int:
        if not cache:
            try:
                cache.append(due_count(visitor_for(request)) if hasattr(request, "session") else 0)
            except DatabaseError:  # tables not migrated yet: no badge rather than a broken page
                cache.append(0)
        return cache[0]

    return count


def due_badge(request: HttpRequest) -> dict:
    return {"due_count": drills_due_count(request)}
