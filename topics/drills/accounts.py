"""Log-in throttling glue for django-axes: which address a failure counts against, and the lockout page."""

import ipaddress

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from prepsite.visitor import client_address


def login_client_address(request: HttpRequest) -> str | None:
    """The address every other limit counts against (visitor.client_address), as a plain IP address
    because axes stores it in an IP column: an IPv6 /64 becomes its first address; none when unknown."""
    address = client_address(request)
    if address == "unknown":
        return None
    return str(ipaddress.ip_network(address, strict=False).network_address)


def cool_off_minutes() -> int:
    return round(float(settings.AXES_COOLOFF_TIME) * 60)


def lockout_message() -> str:
    return (
        f"Too many failed log-in attempts for this account or from your network. "
        f"For your security, logging in is paused for {cool_off_minutes()} minutes; try again after that."
    )


def login_locked_out(request: HttpRequest, response: HttpResponse | None, credentials: dict | None) -> HttpResponse:
    """Our own log-in page with the lockout message, answered 429 (axes' AXES_LOCKOUT_CALLABLE)."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {"form": form, "lockout": lockout_message(), "next": request.POST.get("next", "")}
    return render(request, "registration/login.html", context, status=429)
