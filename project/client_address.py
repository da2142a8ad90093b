"""The client's address, the one way: for rate limits, logs and the socket consumer.

X-Forwarded-For is whatever the client sent plus one address per proxy in front of us, each
appended by that proxy. Only the entries our own proxies appended can be trusted, so with
NUM_PROXIES=N the client is the N-th address from the right; with 0 (or unset: no proxy) the
header is the client's own text and the socket address is the only truth.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _num_proxies() -> int:
    return max(0, int(getattr(settings, "NUM_PROXIES", 0) or 0))


def _pick(socket_address: str, forwarded: str | None) -> str:
    proxies = _num_proxies()
    if proxies == 0 or not forwarded:
        return socket_address
    entries = [entry.strip() for entry in forwarded.split(",")]
    # Fewer entries than proxies: a client that reached an inner proxy directly; the leftmost
    # is then the address the first proxy on its path saw.
    candidate = entries[-min(proxies, len(entries))]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        # A proxy that does not write addresses (or a misconfigured count): never key a limit
        # on free text the client may have chosen.
        return socket_address


def client_address(request: HttpRequest) -> str:
    return _pick(request.META.get("REMOTE_ADDR") or "", request.META.get("HTTP_X_FORWARDED_FOR"))


def scope_client_address(scope: dict) -> str:
    """The same for an ASGI scope (the WebSocket handshake)."""
    client = scope.get("client") or ("",)
    forwarded = [value for name, value in scope.get("headers") or [] if name == b"x-forwarded-for"]
    # Several header lines are one list, in order (RFC 9110 5.3).
    text = ", ".join(value.decode("latin-1") for value in forwarded) if forwarded else None
    if not client[0]:
        return ""
    return _pick(str(client[0]), text)
