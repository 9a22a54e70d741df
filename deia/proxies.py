"""Who is calling: the one rule for believing X-Forwarded-* headers.

A header is only as honest as whoever wrote it. X-Forwarded-For and X-Forwarded-Proto
are believed only when the direct peer (REMOTE_ADDR) is inside TRUSTED_PROXIES; the
client's address is then the right-most X-Forwarded-For entry that is not itself a
trusted proxy (each trusted proxy appends the address it saw, anything further left was
written by the client). This module feeds the /metrics ACL, the audit ip, the API
throttles, the admin login lockout and Django's HTTPS detection; gunicorn's
forwarded_allow_ips is set from the same variable.
"""

from __future__ import annotations

import ipaddress
import secrets

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from deia.middleware_base import SyncAndAsyncMiddleware

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Headers Django itself reads (SECURE_PROXY_SSL_HEADER, USE_X_FORWARDED_HOST): dropped
# from requests whose peer is not a trusted proxy, so they can never be forged.
PROXY_SET_HEADERS = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")


def parse_address(value: str | None) -> Address | None:
    """An IP address, or None; an IPv4-mapped IPv6 address ([::]-bound servers) as IPv4."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted_proxy(address: Address | None) -> bool:
    return address is not None and any(address in network for network in settings.TRUSTED_PROXIES)


def peer_is_trusted(request: HttpRequest) -> bool:
    return is_trusted_proxy(parse_address(request.META.get("REMOTE_ADDR")))


def client_address(request: HttpRequest | None) -> Address | None:
    """The caller's address by the rule above; None when REMOTE_ADDR is not an address."""
    if request is None:
        return None
    address = parse_address(request.META.get("REMOTE_ADDR"))
    if not is_trusted_proxy(address):
        return address
    hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    for hop in reversed(hops):
        if not hop.strip():
            continue
        written_by_trusted = parse_address(hop)
        if written_by_trusted is None:
            # Garbage where a trusted proxy should have written an address: keep the
            # last address we can vouch for.
            break
        address = written_by_trusted
        if not is_trusted_proxy(address):
            break
    return address


def client_ip(request: HttpRequest | None) -> str | None:
    """client_address as text (audit rows, throttle keys, django-axes' client IP callable)."""
    address = client_address(request)
    return None if address is None else str(address)


class ForwardedHeadersMiddleware(SyncAndAsyncMiddleware):
    """Drops X-Forwarded-Proto and X-Forwarded-Host unless the peer is a trusted proxy.

    Placed first, so that SecurityMiddleware's HTTPS redirect, CSRF's origin checks and
    get_host() never see a header a client wrote itself.
    """

    def __call__(self, request: HttpRequest):
        if not peer_is_trusted(request):
            for name in PROXY_SET_HEADERS:
                request.META.pop(name, None)
        return self.get_response(request)


def scrape_allowed(ip: str | None, authorization: str) -> bool:
    """The metrics ACL, for the web and for each bot runner: an allowed address or the token."""
    token = settings.METRICS_TOKEN
    if token and authorization.startswith("Bearer "):
        # Bytes: a non-ASCII header must be a refusal, not compare_digest's TypeError.
        given = authorization[7:].strip().encode("utf-8", "surrogateescape")
        if secrets.compare_digest(given, token.encode()):
            return True
    if ip is None:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_CIDRS)


def metrics_allowed(request) -> bool:
    """Loopback (or METRICS_ALLOWED_CIDRS), or the METRICS_TOKEN as a bearer token."""
    return scrape_allowed(client_ip(request), request.headers.get("Authorization", ""))


def forbidden() -> JsonResponse:
    return JsonResponse(
        {"error": "forbidden", "detail": "allowed from METRICS_ALLOWED_CIDRS or with the METRICS_TOKEN bearer token"},
        status=403,
    )
