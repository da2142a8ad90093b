"""How the sandbox reaches our own callback URLs (WeChat Pay notify, Kuaidi100 push): one place.

settings.SANDBOX_CALLBACK_TRANSPORT picks the wire:
- "http" (default): a real POST with requests, as the partner would; for a running server.
- "django": an in-process django.test.Client request through the full middleware stack; for tests
  and single-process demos where nothing listens on the callback URL.

Shared by every fake partner: WeChat Pay colleague, use `post_callback` (status only) or
`deliver` (status and body) rather than a second copy. Neither raises: a network failure or a
crashing handler is an unacknowledged delivery (status 0 or 5xx) that the caller retries.
"""

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings

logger = logging.getLogger("sandbox")

CALLBACK_TIMEOUT_SECONDS = 10
NO_ANSWER = 0  # status reported when the callback could not be reached at all


@dataclass(frozen=True)
class CallbackReply:
    status: int  # HTTP status, or NO_ANSWER
    body: bytes


def transport() -> str:
    return getattr(settings, "SANDBOX_CALLBACK_TRANSPORT", "http")


def deliver(url: str, *, body: bytes, headers: dict[str, str], content_type: str) -> CallbackReply:
    if transport() == "django":
        return _deliver_in_process(url, body=body, headers=headers, content_type=content_type)
    try:
        response = requests.post(
            url,
            data=body,
            headers={**headers, "Content-Type": content_type},
            timeout=CALLBACK_TIMEOUT_SECONDS,
        )
    except requests.RequestException as exc:
        logger.info("sandbox callback %s unreachable: %s", url, exc)
        return CallbackReply(NO_ANSWER, b"")
    return CallbackReply(response.status_code, response.content)


def post_callback(url: str, *, body: bytes, headers: dict[str, str], content_type: str) -> int:
    return deliver(url, body=body, headers=headers, content_type=content_type).status


def _deliver_in_process(
    url: str, *, body: bytes, headers: dict[str, str], content_type: str
) -> CallbackReply:
    # Imported here: django.test pulls in test-only machinery no production path needs.
    from django.test import Client

    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    client = Client(raise_request_exception=False, HTTP_HOST=parts.netloc or "testserver")
    response = client.post(
        path,
        data=body,
        content_type=content_type,
        headers=headers,
        secure=parts.scheme == "https",
    )
    return CallbackReply(response.status_code, response.content)
