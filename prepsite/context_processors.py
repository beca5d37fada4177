from django.db import DatabaseError
from django.http import HttpRequest

from prepsite.visitor import visitor_for

SITE_NAME = "Queue Prep"


def drills_due_count(request: HttpRequest):
    """A callable the template calls only if it shows the badge: one COUNT query, never an error."""
    cache: list[int] = []

    def count() -> int:
        if not cache:
            from topics.drills.services import due_count

            try:
                cache.append(due_count(visitor_for(request)) if hasattr(request, "session") else 0)
            except DatabaseError:  # tables not migrated yet: no badge rather than a broken page
                cache.append(0)
        return cache[0]

    return count


def site(request: HttpRequest) -> dict:
    return {"site_name": SITE_NAME, "due_count": drills_due_count(request)}
