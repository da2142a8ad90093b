"""`Idempotency-Key` for POST endpoints that move money or stock (API.md conventions).

The first request with a key runs and its answer (success or domain error) is stored; a repeat
of the same request (method, path and body) from the same user gets that answer back and does
nothing. Another request with the key is 422 `idempotency_key_reused`. A repeat that arrives
while the first is still running gets 409 `request_in_progress`; once the first request's lease
has run out unanswered (its process died), the repeat runs instead. An unexpected failure frees
the key. The records are written by `marketplace.actions.idempotency`.
"""

import functools
import json
import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from ninja import Schema, Status

from marketplace.actions import idempotency as idempotency_actions
from marketplace.errors import DomainError, InvalidInput
from project.wire import WireJSONEncoder, render_response

HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,100}$")


def _replay(request: HttpRequest, answer: idempotency_actions.StoredAnswer) -> HttpResponse:
    response = render_response(request, json.loads(answer.body), status=answer.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def _as_text(data: object) -> str:
    # Times in the wire format, UTF-8 as the renderer writes it: the stored text, parsed again,
    # renders to the same bytes for the first answer and every replay.
    return json.dumps(data, cls=WireJSONEncoder, ensure_ascii=False)


def idempotent(scope: str, *, response: type[Schema], by_alias: bool = False) -> Callable:
    """Wraps a view returning `Status(code, value)`. `response` (and `by_alias`) must be the
    route's own response schema for that code: the value is shaped by it here, once, so the
    first answer and its replays are the same bytes."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            key = request.headers.get(HEADER)
            if key is None:
                return view(request, *args, **kwargs)
            if not _VALID_KEY.match(key):
                raise InvalidInput(
                    "Idempotency-Key must be 1-100 visible ASCII characters.",
                    code="invalid_idempotency_key",
                )
            claimed = idempotency_actions.claim_key(
                user=request.auth,
                scope=scope,
                key=key,
                fingerprint=idempotency_actions.fingerprint(
                    method=request.method or "POST",
                    path=request.get_full_path(),
                    body=request.body,
                ),
            )
            if isinstance(claimed, idempotency_actions.StoredAnswer):
                return _replay(request, claimed)
            try:
                result = view(request, *args, **kwargs)
            except DomainError as exc:
                if exc.status >= 500:  # a partner outage: let the client retry for real
                    idempotency_actions.release_key(claim=claimed)
                else:
                    idempotency_actions.store_answer(
                        claim=claimed, status_code=exc.status, body=_as_text(exc.as_body())
                    )
                raise
            except BaseException:
                idempotency_actions.release_key(claim=claimed)
                raise
            if not isinstance(result, Status):
                result = Status(200, result)
            data = response.model_validate(result.value).model_dump(by_alias=by_alias)
            text = _as_text(data)
            idempotency_actions.store_answer(
                claim=claimed, status_code=result.status_code, body=text
            )
            return render_response(request, json.loads(text), status=result.status_code)

        return wrapper

    return decorator
