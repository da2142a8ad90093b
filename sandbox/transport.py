"""A requests transport adapter that answers HTTP calls to partner hosts from in-process handlers.

The client libraries build real URLs, headers, signatures and bodies and parse real responses;
only the socket is replaced. Handlers are registered per (host, method, path); a path may hold
`{name}` segments (e.g. `/v3/refund/domestic/refunds/{out_refund_no}`), matched after the exact
paths and handed to the handler as `request.path_params`.
"""

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

logger = logging.getLogger("sandbox")


@dataclass
class SandboxRequest:
    method: str
    url: str
    host: str
    path: str
    query: dict[str, str]
    headers: CaseInsensitiveDict
    body: bytes
    path_params: dict[str, str] = field(default_factory=dict)
    raw_query: str = ""

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {key: values[-1] for key, values in parsed.items()}


@dataclass
class SandboxResponse:
    status: int = 200
    body: bytes | dict | list | str = b""
    headers: dict[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


Handler = Callable[[SandboxRequest], SandboxResponse]
_routes: dict[tuple[str, str, str], Handler] = {}
_pattern_routes: dict[tuple[str, str, str], tuple[re.Pattern, Handler]] = {}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def route(host: str, method: str, path: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        key = (host, method.upper(), path)
        if _PLACEHOLDER.search(path):
            # One path segment per placeholder; the handler validates what it got.
            pieces = _PLACEHOLDER.split(path)  # literal, name, literal, name, ..., literal
            regex = "".join(
                f"(?P<{piece}>[^/]+)" if index % 2 else re.escape(piece)
                for index, piece in enumerate(pieces)
            )
            _pattern_routes[key] = (re.compile(f"^{regex}$"), handler)
        else:
            _routes[key] = handler
        return handler

    return register


def hosts() -> set[str]:
    return {host for host, _, _ in _routes} | {host for host, _, _ in _pattern_routes}


def _resolve(host: str, method: str, path: str) -> tuple[Handler | None, dict[str, str]]:
    handler = _routes.get((host, method, path))
    if handler is not None:
        return handler, {}
    for (route_host, route_method, _), (pattern, candidate) in _pattern_routes.items():
        if route_host == host and route_method == method:
            match = pattern.match(path)
            if match:
                return candidate, match.groupdict()
    return None, {}


class SandboxAdapter(BaseAdapter):
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        sandbox_request = SandboxRequest(
            method=request.method.upper(),
            url=request.url,
            host=parts.netloc,
            path=parts.path,
            query={key: values[-1] for key, values in parse_qs(parts.query).items()},
            headers=CaseInsensitiveDict(request.headers),
            body=body,
            raw_query=parts.query,
        )
        handler, sandbox_request.path_params = _resolve(
            parts.netloc, sandbox_request.method, parts.path
        )
        if handler is None:
            reply = SandboxResponse(
                404, {"errcode": 404, "errmsg": f"no sandbox route {parts.path}"}
            )
        else:
            reply = handler(sandbox_request)
        logger.debug("sandbox %s %s -> %s", request.method, parts.path, reply.status)
        return self._build_response(request, reply)

    @staticmethod
    def _build_response(
        request: requests.PreparedRequest, reply: SandboxResponse
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = reply.status
        response._content = reply.content()
        headers = {"Content-Type": "application/json; charset=utf-8", **reply.headers}
        response.headers = CaseInsensitiveDict(headers)
        response.encoding = "utf-8"
        response.url = request.url
        response.request = request
        response.reason = "OK" if reply.status < 400 else "Error"
        return response

    def close(self) -> None:
        pass


def mount(session: requests.Session) -> requests.Session:
    """Route every registered partner host of this session to the sandbox."""
    adapter = SandboxAdapter()
    for host in hosts():
        session.mount(f"https://{host}/", adapter)
    return session


def sandbox_session() -> requests.Session:
    return mount(requests.Session())
