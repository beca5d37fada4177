from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from redis.exceptions import RedisError
from rq import Worker

from prepsite.redis_conn import LAB_QUEUE, get_redis
from sandbox.workers import scheduler_alive


@require_GET
def home(request: HttpRequest):
    return render(request, "home.html")


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    body = {"database": "ok", "redis": "ok", "workers": 0, "scheduler": False}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        body["database"] = "error"
    try:
        redis = get_redis()
        body["workers"] = Worker.count(connection=redis)
        body["scheduler"] = scheduler_alive(redis, LAB_QUEUE)
    except (RedisError, OSError):
        body["redis"] = "error"
    healthy = body["database"] == "ok" and body["redis"] == "ok"
    return JsonResponse(body, status=200 if healthy else 503)
