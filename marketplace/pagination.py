"""Keyset (cursor) pagination for every list endpoint: `{"items": [...], "next_cursor": ...}`.

Why keyset and not offsets: a page is "the next `limit` rows after the last one you saw" in a
total order, so rows inserted meanwhile never shift or repeat items, and page 5,000 costs the
same index range scan as page 1.

Usage (a view):

    from marketplace.pagination import PageParams, paginate

    @router.get("/orders", response=Page[OrderOut])   # Page from marketplace.api.catalog
    def orders(request, page: Query[PageParams]):
        qs = Order.objects.filter(buyer=request.auth).select_related(...)
        return paginate(qs, ordering=("-created_at", "-id"), limit=page.limit, cursor=page.cursor)

Rules:
- `ordering` names concrete, non-null model fields (or annotations declared through
  `fields=`); the last one must be unique (normally `id`/`-id`) so the order is total.
- All fields of one ordering should sort the same direction to use one composite index.
- The cursor is opaque to clients (base64url JSON of the last row's key, tagged with the
  ordering so a cursor from one sort cannot be replayed against another). A bad cursor is a
  400 `invalid_cursor`, never a 500.
- `transform(rows)` may turn the model instances into dicts/schemas (one call per page, so
  it can batch extra lookups and keep the number of queries independent of the page size).
"""

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Field, Q, QuerySet
from pydantic import BaseModel
from pydantic import Field as PydanticField

from marketplace.errors import InvalidInput

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class PageParams(BaseModel):
    """`?limit=&cursor=` for ninja views: `page: Query[PageParams]`."""

    limit: int = PydanticField(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = PydanticField(None, max_length=500)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def _bad_cursor() -> InvalidInput:
    return InvalidInput("The cursor is invalid; start again without it.", code="invalid_cursor")


def _encode_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def encode_cursor(tag: str, values: Sequence[Any]) -> str:
    raw = json.dumps([tag, [_encode_value(v) for v in values]], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, tag: str, fields: Sequence[Field]) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        got_tag, values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise _bad_cursor() from exc
    if got_tag != tag or not isinstance(values, list) or len(values) != len(fields):
        raise _bad_cursor()
    try:
        decoded = [field.to_python(value) for field, value in zip(fields, values, strict=True)]
    except Exception as exc:  # to_python raises ValidationError/TypeError on junk
        raise _bad_cursor() from exc
    if any(value is None for value in decoded):
        raise _bad_cursor()
    return decoded


def _after(keys: Sequence[tuple[str, bool]], values: Sequence[Any]) -> Q:
    """Rows strictly after `values` in the order `keys` ((name, descending) pairs).

    (a, b) after (va, vb) is `a ⋗ va OR (a = va AND b ⋗ vb)`. The leading `a ⋗= va` is
    redundant logically but gives the database an index range condition to start from.
    """
    (first, first_desc), first_value = keys[0], values[0]
    op = "lt" if first_desc else "gt"
    if len(keys) == 1:
        return Q(**{f"{first}__{op}": first_value})
    rest = _after(keys[1:], values[1:])
    return Q(**{f"{first}__{op}e": first_value}) & (
        Q(**{f"{first}__{op}": first_value}) | (Q(**{first: first_value}) & rest)
    )


def paginate(
    queryset: QuerySet,
    *,
    ordering: Sequence[str],
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    transform: Callable[[list[Any]], list[Any]] | None = None,
    fields: dict[str, Field] | None = None,
) -> Page:
    """One page of `queryset` in `ordering`, after `cursor`. See the module docstring."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    keys = [(name.lstrip("-"), name.startswith("-")) for name in ordering]
    opts = queryset.model._meta
    tag = ",".join(ordering)
    queryset = after_cursor(queryset, ordering, cursor, fields=fields)
    rows = list(queryset.order_by(*ordering)[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more and rows:
        last = rows[-1]
        next_cursor = encode_cursor(tag, [getattr(last, _attname(opts, name)) for name, _ in keys])
    items = transform(rows) if transform else rows
    return Page(items=items, next_cursor=next_cursor)


def after_cursor(
    queryset: QuerySet,
    ordering: Sequence[str],
    cursor: str | None,
    *,
    fields: dict[str, Field] | None = None,
) -> QuerySet:
    """`queryset` narrowed to the rows after `cursor` in `ordering` (400 `invalid_cursor` for a
    bad one); for queries that page by keyset without `paginate`."""
    if not cursor:
        return queryset
    keys = [(name.lstrip("-"), name.startswith("-")) for name in ordering]
    opts = queryset.model._meta
    model_fields = [(fields or {}).get(name) or opts.get_field(name) for name, _ in keys]
    values = decode_cursor(cursor, ",".join(ordering), model_fields)
    return queryset.filter(_after(keys, values))


def cursor_for(ordering: Sequence[str], key: Sequence[Any]) -> str:
    """The cursor of the row whose sort key (in `ordering`'s order) is `key`."""
    return encode_cursor(",".join(ordering), key)


def _attname(opts, name: str) -> str:
    try:
        return opts.get_field(name).attname
    except Exception:  # an annotation, read as an attribute of the same name
        return name


def page_schema(item_schema: type[BaseModel], name: str) -> type[BaseModel]:
    """The response schema of a paginated endpoint: `{"items": [item], "next_cursor": str|null}`.

    `OrderPage = page_schema(OrderOut, "OrderPage")`, then `response=OrderPage` and return
    `paginate(...).as_dict()`. Named explicitly so the OpenAPI document has stable names.
    """
    from pydantic import create_model

    return create_model(
        name,
        items=(list[item_schema], ...),  # type: ignore[valid-type]  # built at runtime
        next_cursor=(str | None, PydanticField(None, description="Pass as ?cursor= for more.")),
    )
