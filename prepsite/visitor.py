"""Who is asking: the account when logged in, else an anonymous id kept in the session.

Every app asks `visitor_for(request)`; every row a visitor owns carries `user` and `anon_id`
columns and is read through `Visitor.lookup()`. At log-in (and sign-up) one hook sends
`anonymous_visitor_claimed`, and each app moves what the anonymous visitor owned to the account.
"""

import ipaddress
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import Signal, receiver
from django.http import HttpRequest

# The anonymous id lives in the session *data*, which survives the key cycling that login() does.
ANON_KEY = "visitor"
CLI_ANON_ID = "cli"
ANON_ID_LENGTH = 64  # the column that holds it (prepsite.ownership); ids are 24 characters

# Sent inside one transaction with source (anonymous Visitor) and target (the account's Visitor).
anonymous_visitor_claimed = Signal()


@dataclass(frozen=True)
class Visitor:
    user_id: int | None = None
    anon_id: str = ""

    @property
    def key(self) -> str:
        """A stable string for rate limits and logs."""
        return f"user:{self.user_id}" if self.user_id else f"anon:{self.anon_id}"

    def lookup(self) -> dict:
        """Filter for the rows this visitor owns."""
        if self.user_id:
            return {"user_id": self.user_id}
        return {"user__isnull": True, "anon_id": self.anon_id}

    def owner(self) -> dict:
        """Field values for a new row owned by this visitor."""
        return {"user_id": self.user_id, "anon_id": "" if self.user_id else self.anon_id}


# The command line (`manage.py experiment`) is a visitor too; no session can mint this id.
CLI = Visitor(anon_id=CLI_ANON_ID)


def visitor_for(request: HttpRequest, *, create: bool = False) -> Visitor | None:
    """The request's visitor. Anonymous visitors get an id only when they first do something
    (create=True), so a plain page view never writes a session."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return Visitor(user_id=user.pk)
    session = getattr(request, "session", None)
    if session is None:
        return None
    anon_id = session.get(ANON_KEY)
    if anon_id:
        return Visitor(anon_id=anon_id)
    if not create:
        return None
    anon_id = secrets.token_urlsafe(18)
    session[ANON_KEY] = anon_id  # the session middleware saves it and sends the cookie
    return Visitor(anon_id=anon_id)


def client_address(request: HttpRequest) -> str:
    """The client's IP address. Behind TRUSTED_PROXIES proxies, the address the outermost trusted one saw
    (X-Forwarded-For read from the right, so a client cannot prepend its own); IPv6 grouped by /64."""
    address = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXIES
    if hops:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            address = forwarded[-hops]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))  # one host holds a whole /64
    return str(ip)


# An address may do this many times what one visitor may: people behind one NAT (a classroom, an office)
# each get their own budget, while a script minting cookies from one address still meets a wall.
ADDRESS_CEILING_TIMES = 4
SIGN_UP_INVITE = "Sign up (it is free) and your account gets a budget of its own."


def limit_key(request: HttpRequest) -> str:
    """What per-visitor limits count against: the account when logged in, else the anonymous visitor (made
    now if the request has none yet). Anonymous visitors are also bounded per address (address_key)."""
    return visitor_for(request, create=True).key


def address_key(request: HttpRequest) -> str:
    """What the per-address ceiling counts against: the client address of an anonymous visitor; "" for an
    account (sign-ups are bounded per address instead, so an account is worth its own budget)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return ""
    return f"ip:{client_address(request)}"


@receiver(user_logged_in, dispatch_uid="claim_anonymous_visitor")
def claim_anonymous_visitor(sender, request, user, **kwargs) -> None:
    session = getattr(request, "session", None)
    anon_id = session.pop(ANON_KEY, None) if session is not None else None
    if not anon_id:
        return
    with transaction.atomic():
        anonymous_visitor_claimed.send(sender=Visitor, source=Visitor(anon_id=anon_id), target=Visitor(user_id=user.pk))
