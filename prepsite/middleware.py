from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.http.multipartparser import MultiPartParserError
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


class UnreadableBodyMiddleware:
    """A POST whose multipart body cannot be parsed (no boundary, say) is a 400 wherever it is sent.

    Django turns the parse error into a 400 inside a view, but not on the way to a 404: the not-found
    handler's CSRF check reads the body outside any error handling, and the visitor got a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.content_type == "multipart/form-data":
            try:
                request.POST  # noqa: B018  (parsed once here; views and middleware reuse it)
            except MultiPartParserError:
                return HttpResponseBadRequest("The request body could not be read (a malformed multipart form).")
        return self.get_response(request)
