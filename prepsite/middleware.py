from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from redis.exceptions import RedisError

from prepsite.redis_conn import redis_is_full


class RedisUnavailableMiddleware:
    """Any view that needs Redis answers 503 with a banner, never a 500, while Redis is down."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (RedisError, ConnectionRefusedError)):
            return None
        template = "redis_down.html#banner" if getattr(request, "htmx", False) else "redis_down.html"
        return render(request, template, {"redis_full": redis_is_full(exception)}, status=503)
