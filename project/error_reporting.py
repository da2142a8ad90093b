"""Error reporting to Sentry when SENTRY_DSN is set (docs/operations.md, "Error reporting").

Nothing personal leaves the machine: an event is scrubbed in `before_send` (and each breadcrumb
in `before_breadcrumb`), so what reaches the transport has

* no value under a key that names a secret or personal data (tokens, cookies, the sign-in
  `code`, phone numbers, payout account numbers, addresses and their parts, names, openids),
  anywhere in the event: request headers, bodies, query strings, frame locals, extra, tags;
* no phone number, long digit run (an account number), bearer token or `token=` parameter
  inside any remaining string (exception messages, log messages, URLs).

(Sentry's own EventScrubber is off once `data_collection` is given: this is the scrubber.)

Requests are reported with their request id (the `X-Request-ID` the client sees), without
bodies or user details (`data_collection`), so no address, cookie or user name is attached.
"""

import re
from collections.abc import Callable
from typing import Any

from project.middleware import request_id_var

FILTERED = "[Filtered]"

# Lower-cased keys whose values never leave: substrings, so "api_token", "HTTP_AUTHORIZATION"
# and "account_no_encrypted" match too.
_SENSITIVE_KEY_PARTS = (
    "token",
    "authorization",
    "cookie",
    "password",
    "passwd",
    "secret",
    "session",
    "csrf",
    "signature",
    "apiv3",
    "private_key",
    "phone",
    "mobile",
    "account_no",
    "account_number",
    "card_no",
    "address",
    "province",
    "city",
    "district",
    "detail",
    "recipient",
    "holder_name",
    "openid",
    "unionid",
    "id_card",
    "x_forwarded_for",
    "remote_addr",
    "ip_address",
)
# Whole keys only: too short or too common to match as parts ("code" would hit "status_code").
_SENSITIVE_KEYS = frozenset({"code", "name", "nickname", "key", "ip", "email"})

_PATTERNS = (
    # Bearer tokens and API tokens in query strings or messages.
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + FILTERED),
    (
        re.compile(r"(?i)\b(token|access_token|code|key|sign|signature)=[^&\s\"']+"),
        r"\1=" + FILTERED,
    ),
    # Mainland mobile numbers (11 digits from 1[3-9]), optionally +86.
    (re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d{9}(?!\d)"), FILTERED),
    # Bank card and account numbers: a run of 12 to 19 digits on its own (ids and amounts in fen
    # are shorter; an order number starts with a letter, so it stays readable in the logs).
    (re.compile(r"(?<![\w])\d{12,19}(?!\d)"), FILTERED),
    # A JSON or repr fragment that names an address field: its value goes.
    (
        re.compile(
            r"(?i)([\"']?(?:address|detail|province|city|district|phone|name|holder_name|"
            r"account_no|openid)[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*')"
        ),
        r"\1'" + FILTERED + "'",
    ),
)


def is_sensitive_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    return lowered in _SENSITIVE_KEYS or any(part in lowered for part in _SENSITIVE_KEY_PARTS)


def scrub_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub(value: Any) -> Any:
    """A copy of `value` with every sensitive key's value and sensitive text filtered."""
    if isinstance(value, dict):
        return {
            key: (FILTERED if is_sensitive_key(key) and item not in (None, "") else scrub(item))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        # Headers come as [name, value] pairs in some integrations.
        if len(value) == 2 and is_sensitive_key(value[0]) and isinstance(value[1], str):
            return [value[0], FILTERED]
        return [scrub(item) for item in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def before_send(event: Any, hint: dict[str, Any]) -> Any:  # noqa: ARG001 - Sentry's hook signature
    # The user is reported by id only (the request id travels as a tag).
    user = event.get("user")
    scrubbed = scrub(event)
    request_id = request_id_var.get()
    if request_id != "-":
        scrubbed.setdefault("tags", {})["request_id"] = request_id
    if isinstance(user, dict):
        scrubbed["user"] = {"id": user["id"]} if "id" in user else {}
    return scrubbed


def before_breadcrumb(crumb: Any, hint: dict[str, Any]) -> Any:  # noqa: ARG001
    return scrub(crumb)


def init(
    *,
    dsn: str,
    environment: str,
    release: str | None = None,
    traces_sample_rate: float = 0.0,
    transport: Callable | type | None = None,
) -> None:
    """Called from settings when SENTRY_DSN is set (and by the tests, with a local transport)."""
    import sentry_sdk  # only deployments that report errors pay for importing it
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.huey import HueyIntegration

    options: dict[str, Any] = {}
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        # DjangoIntegration also instruments Channels' ASGI consumers (sentry-sdk patches them).
        integrations=[
            DjangoIntegration(transaction_style="url"),
            HueyIntegration(),
        ],
        # The default logging integration stays: the API's handler logs an unhandled error
        # (with its traceback) and answers 500 itself, so that ERROR line is the event.
        # No user details (the request id identifies the request) and no request bodies: they
        # hold addresses and phone numbers, and the scrubber is the second line, not the first.
        data_collection={"user_info": False, "http_bodies": []},
        before_send=before_send,
        before_breadcrumb=before_breadcrumb,
        traces_sample_rate=traces_sample_rate,
        **options,
    )
