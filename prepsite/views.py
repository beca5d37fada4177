from django.conf import settings
from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.shortcuts import render
from django.utils.module_loading import import_string
from django.views.decorators.http import require_safe


@require_safe
def home(request: HttpRequest):
    """Home, with what the apps contribute for this visitor (settings.HOME_CONTEXT: Drills' plan and Continue)."""
    context: dict = {}
    for hook in settings.HOME_CONTEXT:
        context |= import_string(hook)(request)
    return render(request, "home.html", context)


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The database here; everything else from the checks the apps contribute (settings.HEALTH_CHECKS)."""
    body = {"status": "ok", "database": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        body["database"] = "error"
    statuses = ["error" if body["database"] == "error" else "ok"]
    for check in settings.HEALTH_CHECKS:
        fields, status = import_string(check)()
        body |= fields
        statuses.append(status)
    body["status"] = next(s for s in ("error", "degraded", "ok") if s in statuses)
    return JsonResponse(body, status=503 if body["status"] == "error" else 200)
