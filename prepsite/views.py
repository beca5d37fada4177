from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from redis.exceptions import RedisError
from rq import Worker

from prepsite.redis_conn import LAB_QUEUE, get_redis
from sandbox import janitor
from sandbox.workers import scheduler_alive


@require_safe
def home(request: HttpRequest):
    return render(request, "home.html")


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    body = {"status": "ok", "database": "ok", "redis": "ok", "workers": 0, "scheduler": False, "janitor_age_s": None}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        body["database"] = "error"
    try:
        redis = get_redis()
        body["workers"] = Worker.count(connection=redis)
        body["scheduler"] = scheduler_alive(redis, LAB_QUEUE)
        age = janitor.heartbeat_age(redis)
        body["janitor_age_s"] = round(age, 1) if age is not None else None
    except (RedisError, OSError):
        body["redis"] = "error"
    healthy = body["database"] == "ok" and body["redis"] == "ok"
    janitor_stale = body["janitor_age_s"] is None or body["janitor_age_s"] > janitor.JANITOR_STALE_SECONDS
    # Degraded: pages work, but a dead worker's jobs wait for RQ's own 60+ s, or retries never fire.
    body["status"] = "error" if not healthy else "degraded" if janitor_stale or not body["scheduler"] else "ok"
    return JsonResponse(body, status=200 if healthy else 503)
