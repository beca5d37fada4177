"""Accounts, for every app: sign-up (bounded per client address), and log-in throttling glue for
django-axes (which address a failure counts against, and the lockout page). Logging in or signing up
moves what the anonymous visitor owned into the account (prepsite.visitor)."""

import ipaddress

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from redis.exceptions import RedisError

from prepsite.ratelimit import allow, window_key
from prepsite.redis_conn import get_redis
from prepsite.visitor import ADDRESS_CEILING_TIMES, client_address

SIGNUPS_PER_HOUR = 10
# Sign-up attempts (valid or not) per address: a refused form says whether a username exists, so the attempts
# themselves are bounded, before the form is checked.
SIGNUP_ATTEMPTS_PER_HOUR = 20
# axes locks an account at one address after AXES_FAILURE_LIMIT failures (account and address together, so a
# stranger cannot lock a victim out); one address failing on many accounts meets this ceiling instead.
LOGIN_FAILURE_WINDOW_S = 15 * 60


class SignupForm(UserCreationForm):
    pass


def signup_allowed(request: HttpRequest) -> bool:
    """Accounts are what per-account limits count against, so minting them is bounded per client address.
    Fails open: signing up needs only the database."""
    who = f"ip:{client_address(request)}"
    return allow("signup", who, limit=SIGNUPS_PER_HOUR, window_s=60 * 60, fail_open=True)


WELCOME = (
    "Welcome, {name}. Everything you did in this browser is now saved to your account: chapters marked, "
    "where you stopped reading, your plan, drill history, mock interviews and Lab experiments."
)


def safe_next(request: HttpRequest) -> str:
    """The page to return to after signing up: ?next= or the form's next, when it is on this site."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    ok = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return target if ok else ""


def signup_attempt_allowed(request: HttpRequest) -> bool:
    return allow(
        "signup-attempt", f"ip:{client_address(request)}", limit=SIGNUP_ATTEMPTS_PER_HOUR, window_s=60 * 60,
        fail_open=True,
    )  # fmt: skip


@require_http_methods(["GET", "HEAD", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    next_url = safe_next(request)
    if request.user.is_authenticated:
        return redirect(next_url or "drills:home")
    if request.method == "POST" and not signup_attempt_allowed(request):
        form = SignupForm(initial={"username": request.POST.get("username", "")})  # not validated: no answer
        form.cleaned_data = {}  # an unbound form carries the one error
        form.add_error(None, "Too many sign-up attempts from your network recently; please try again in an hour.")
        return render(request, "registration/signup.html", {"form": form, "next": next_url}, status=429)
    form = SignupForm(request.POST or None)
    context = {"form": form, "next": next_url}
    if request.method == "POST" and form.is_valid() and not signup_allowed(request):
        form.add_error(None, "Too many accounts were created from your network recently; please try again later.")
        return render(request, "registration/signup.html", context, status=429)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")  # merges anonymous progress
        messages.success(request, WELCOME.format(name=user.get_username()))
        return redirect(next_url or "drills:home")
    return render(request, "registration/signup.html", context)


def login_failure_ceiling() -> int:
    return int(settings.AXES_FAILURE_LIMIT) * ADDRESS_CEILING_TIMES


def address_failed_too_often(request: HttpRequest) -> bool:
    """One address has failed to log in on any accounts this many times this window (fails open: Redis down,
    axes' per-account-and-address lockout still holds)."""
    try:
        failures = int(
            get_redis().get(window_key("login-failed", f"ip:{client_address(request)}", LOGIN_FAILURE_WINDOW_S)) or 0
        )
    except (RedisError, OSError):
        return False
    return failures >= login_failure_ceiling()


@receiver(user_login_failed, dispatch_uid="count_login_failures_per_address")
def count_login_failure(sender, credentials: dict, request: HttpRequest | None = None, **kwargs) -> None:
    if request is not None:
        allow("login-failed", f"ip:{client_address(request)}", limit=0, window_s=LOGIN_FAILURE_WINDOW_S, fail_open=True)


class LoginView(auth_views.LoginView):
    """Django's log-in, refused with the lockout page once the address met its ceiling of failures."""

    def post(self, request, *args, **kwargs):
        if address_failed_too_often(request):
            return login_locked_out(request, None, {"username": request.POST.get("username", "")})
        return super().post(request, *args, **kwargs)


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
