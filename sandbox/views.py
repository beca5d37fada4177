from django.http import HttpRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def lab_home(request: HttpRequest):
    return render(request, "sandbox/lab_home.html")
