"""`Idempotency-Key` for POST endpoints that move money or stock (API.md conventions).

The first request with a key runs and its answer (success or domain error) is stored; a repeat
from the same user gets that answer back and does nothing. A repeat that arrives while the
first is still running gets 409 `request_in_progress`. An unexpected failure frees the key.
"""

import functools
import json
import re
from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse

from marketplace.errors import Conflict, DomainError, InvalidInput
from marketplace.models.orders import IdempotencyRecord
from project.wire import WireJSONEncoder, render_response

HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,100}$")


def _claim(request: HttpRequest, scope: str, key: str) -> IdempotencyRecord | HttpResponse:
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(user=request.auth, scope=scope, key=key)
    except IntegrityError:
        pass
    first = IdempotencyRecord.objects.get(user=request.auth, scope=scope, key=key)
    if first.status_code is None:
        raise Conflict(
            "The first request with this key is still running.", code="request_in_progress"
        )
    # Rendered as the first answer was (UTF-8, the wire's time format), not by JsonResponse.
    response = render_response(request, first.body, status=first.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(scope: str) -> Callable:
    """Wraps a view returning `Status(code, dict)`; the dict must already be the JSON body."""

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
            claimed = _claim(request, scope, key)
            if isinstance(claimed, HttpResponse):
                return claimed
            try:
                result = view(request, *args, **kwargs)
            except DomainError as exc:
                stored = IdempotencyRecord.objects.filter(pk=claimed.pk)
                if exc.status >= 500:  # a partner outage: let the client retry for real
                    stored.delete()
                else:
                    stored.update(status_code=exc.status, body=exc.as_body())
                raise
            except BaseException:
                IdempotencyRecord.objects.filter(pk=claimed.pk).delete()
                raise
            # Stored as JSON text would carry it (datetimes written in the wire format), so the
            # JSON column takes it and a replay renders the same values.
            body = json.loads(json.dumps(result.value, cls=WireJSONEncoder))
            IdempotencyRecord.objects.filter(pk=claimed.pk).update(
                status_code=result.status_code, body=body
            )
            return result

        return wrapper

    return decorator
