"""`Idempotency-Key` records: the writes behind `marketplace.api.idempotency`.

A key names one request of one user on one endpoint: its method, path and body (the
fingerprint). The first request claims the key for a lease; its answer, once stored, is what
every repeat of that same request gets back. A different request with the key is refused (422
`idempotency_key_reused`) rather than answered with another request's result. A repeat during
the lease is 409 `request_in_progress`; after it, the first request is taken for dead (its
process was killed before it could answer or free the key) and the repeat runs in its place.
"""

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace.errors import Conflict, Unprocessable
from marketplace.models import User
from marketplace.models.orders import IdempotencyRecord

logger = logging.getLogger("marketplace.idempotency")

# Claiming can lose to a concurrent claim, take-over or release; each loss is re-read, and
# three in a row only happen under a storm of duplicates, which 409 answers well enough.
_CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class Claim:
    """This request holds the key. `claimed_at` is the lease's token: a later take-over
    changes it, and then this request's answer is no longer the key's."""

    record_id: int
    claimed_at: datetime


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int
    body: str  # JSON text, exactly as the first answer rendered it


def lease() -> timedelta:
    return timedelta(seconds=settings.IDEMPOTENCY_LEASE_SECONDS)


def fingerprint(*, method: str, path: str, body: bytes) -> str:
    """What makes two requests the same one. A JSON body is compared as JSON (key order and
    spacing are a client library's choice, not a different request); anything else as bytes."""
    canonical = body
    with contextlib.suppress(ValueError, RecursionError):
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    digest = hashlib.sha256(f"{method.upper()}\n{path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


def claim_key(
    *, user: User, scope: str, key: str, fingerprint: str, now: datetime | None = None
) -> Claim | StoredAnswer:
    """Claims the key for this request, or returns the first answer to this same request.
    Raises 422 `idempotency_key_reused` for another request with the key, 409
    `request_in_progress` while the first one's lease runs."""
    for _ in range(_CLAIM_ATTEMPTS):
        now = now or timezone.now()
        try:
            with transaction.atomic(durable=True):
                record = IdempotencyRecord.objects.create(
                    user=user, scope=scope, key=key, fingerprint=fingerprint, claimed_at=now
                )
            return Claim(record_id=record.pk, claimed_at=now)
        except IntegrityError:
            pass
        first = IdempotencyRecord.objects.filter(user=user, scope=scope, key=key).first()
        if first is None:
            now = None
            continue  # the first request failed and freed the key in between: claim it afresh
        # Records written before keys were bound to requests have no fingerprint: they are
        # taken as this request, so a retry straddling the upgrade is replayed, never re-run.
        if first.fingerprint and first.fingerprint != fingerprint:
            raise Unprocessable(
                "This Idempotency-Key was used for another request; use a new key for a new "
                "request.",
                code="idempotency_key_reused",
            )
        if first.status_code is not None:
            return StoredAnswer(status_code=first.status_code, body=first.body or "null")
        started = first.claimed_at or first.created_at
        if started + lease() > now:
            raise Conflict(
                "The first request with this key is still running.", code="request_in_progress"
            )
        # The lease ran out without an answer: that request died mid-flight. Compare-and-set on
        # its claim time, so of several retries arriving together exactly one takes over.
        taken = IdempotencyRecord.objects.filter(
            pk=first.pk, status_code__isnull=True, claimed_at=first.claimed_at
        ).update(claimed_at=now, fingerprint=fingerprint)
        if taken:
            logger.warning(
                "idempotency key %s:%s of user %s was in flight since %s: the retry takes over",
                scope,
                key,
                user.pk,
                started.isoformat(),
            )
            return Claim(record_id=first.pk, claimed_at=now)
        now = None  # another retry took it, or the answer landed: read it again
    raise Conflict("The first request with this key is still running.", code="request_in_progress")


def store_answer(*, claim: Claim, status_code: int, body: str) -> bool:
    """Keeps the answer for repeats. False when the lease was lost to a take-over meanwhile
    (the request outran its lease): the take-over's answer stands."""
    stored = IdempotencyRecord.objects.filter(
        pk=claim.record_id, claimed_at=claim.claimed_at, status_code__isnull=True
    ).update(status_code=status_code, body=body)
    if not stored:
        logger.warning(
            "idempotency record %s: answered after its lease was taken over; "
            "IDEMPOTENCY_LEASE_SECONDS is shorter than this request ran",
            claim.record_id,
        )
    return bool(stored)


def release_key(*, claim: Claim) -> None:
    """Frees the key after a failure that the client should retry for real (an outage, a
    bug), unless a take-over holds it now."""
    IdempotencyRecord.objects.filter(
        pk=claim.record_id, claimed_at=claim.claimed_at, status_code__isnull=True
    ).delete()
