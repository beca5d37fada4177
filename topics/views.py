from django.http import HttpRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def topic_list(request: HttpRequest):
    return render(request, "topics/topic_list.html")
