"""A public listing page on PostgreSQL in one prepared statement (docs/catalog.md "Search",
"One prepared statement per page shape").

An uncached category page, price window, deep cursor or keyword search is one statement that
finds the page's sort keys (index-only, from the covering sort indexes), reads those rows with
their sellers, and returns the summary columns. The statement's text depends only on the page's
*shape* (sort, which filters are present, cursor or not, the number of words, the page size),
never on the values, which are parameters: it is prepared once per pooled connection and, under the
connection's `plan_cache_mode=force_generic_plan` (project/settings.py), planned once too. The
ORM's version of the same page took ~3 ms of planning for a search (the statement is large and
PostgreSQL folded the word functions at plan time) and ~1-2 ms of query compilation and model
instances in Python, for ~1 ms of execution.

What makes the generic plan as good as a custom one: a word's signature and grams are computed
once per execution (scalar subqueries, i.e. InitPlans), not per row; the gram-index step is
behind a one-time filter on the walk's count; and the grams function is declared expensive
(migration 0011), so no plan evaluates it per row instead of using the GIN index.

Only fixed fragments are interpolated into the SQL: column names from `ORDER_COLUMNS`,
placeholders and the two limits (integers). Every other value is a parameter.
"""

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.db import connection
from psycopg import Cursor
from psycopg.types.numeric import Int8

from marketplace.representations import media_url

# The sort columns a page may be ordered by, with their PostgreSQL types (parameters are cast,
# so one prepared statement takes any value).
ORDER_COLUMNS = {
    "approved_at": "timestamptz",
    "views": "bigint",
    "price_fen": "bigint",
    "id": "bigint",
}
# The summary's columns (marketplace/representations.py `listing_summary_data`), in its order.
_SUMMARY = (
    "l.id, l.title, l.price_fen, l.original_price_fen, l.shipping_fee_fen, l.city_code,"
    " l.condition, l.cover, l.status, l.views, l.favorite_count, u.id, u.nickname,"
    " u.avatar_url, l.created_at"
)
_SUMMARY_WIDTH = 15
_TEXT = "catalog_search_text(l.title::text, l.description)"


class _PreparedCursor(Cursor):
    """Server-side binding, prepared from the first execution (psycopg keeps one prepared
    statement per text on each connection). Django's own cursors bind on the client and never
    prepare, so nothing else on the connection is affected."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


def _fetch(sql: str, params: Sequence[Any]) -> list[tuple]:
    """Run through Django's cursor wrapper (execute wrappers, query logging and counting see
    it as any other statement) on a prepared, server-binding cursor."""
    connection.ensure_connection()
    raw = _PreparedCursor(connection.connection)
    # django-stubs types these as taking a wrapper; they take the driver's cursor and wrap it.
    make = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    wrapped = make(raw)  # type: ignore[arg-type]
    with wrapped as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _param(value: Any) -> Any:
    # One parameter type per column whatever the value (psycopg would pick int2/int4/int8 by
    # magnitude, and each type would be another prepared statement).
    return Int8(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _order_by(keys: Sequence[tuple[str, bool]], alias: str) -> str:
    return ", ".join(f"{alias}.{name} {'DESC' if desc else 'ASC'}" for name, desc in keys)


def _after(keys: Sequence[tuple[str, bool]], values: Sequence[Any]) -> tuple[str, list]:
    """Rows strictly after `values`, written as marketplace/pagination.py `_after` writes it
    (the leading `a <= va` gives the index a range condition to start from)."""
    (name, desc), value = keys[0], values[0]
    op = "<" if desc else ">"
    placeholder = f"%s::{ORDER_COLUMNS[name]}"
    if len(keys) == 1:
        return f"l.{name} {op} {placeholder}", [value]
    rest, rest_params = _after(keys[1:], values[1:])
    sql = (
        f"l.{name} {op}= {placeholder} AND (l.{name} {op} {placeholder}"
        f" OR (l.{name} = {placeholder} AND {rest}))"
    )
    return sql, [value, value, value, *rest_params]


def _window(
    filters: dict[str, Any], keys: Sequence[tuple[str, bool]], after: Sequence[Any] | None
) -> tuple[str, list]:
    """The WHERE clause of the public window: on sale, seller not banned (a small hashed set
    checked on the index's seller_id), the filters, after the cursor."""
    conditions = [
        "l.status = 'on_sale'",
        "NOT (l.seller_id IN (SELECT b.id FROM accounts_user b WHERE b.is_banned))",
    ]
    params: list[Any] = []
    if filters.get("category_ids") is not None:
        conditions.append("l.category_id = ANY(%s::bigint[])")
        params.append([Int8(i) for i in filters["category_ids"]])
    if filters.get("min_price") is not None:
        conditions.append("l.price_fen >= %s::bigint")
        params.append(filters["min_price"])
    if filters.get("max_price") is not None:
        conditions.append("l.price_fen <= %s::bigint")
        params.append(filters["max_price"])
    if filters.get("city_code"):
        conditions.append("l.city_code = %s::text")
        params.append(filters["city_code"])
    if filters.get("condition"):
        conditions.append("l.condition = %s::text")
        params.append(filters["condition"])
    if after is not None:
        sql, after_params = _after(keys, after)
        conditions.append(sql)
        params += after_params
    return " AND ".join(conditions), params


def _has_word(text: str) -> str:
    return f"strpos({text}, upper(%s::text)) > 0"


def _found_sql(
    keys: Sequence[tuple[str, bool]],
    where: str,
    where_params: list,
    words: list[str],
    limit: int,
    walk_rows: int,
) -> tuple[str, list]:
    """The statement giving the page's sort keys (id last), in order."""
    columns = ", ".join(f"l.{name}" for name, _ in keys)
    order = _order_by(keys, "l")
    # The limits are written into the text (integers, and few: a page size, the walk's length):
    # as parameters, the generic plan could not know a subquery returns a page and not 10 % of
    # the table, and joined a category page's keys to a sequential scan of it (1.5 s).
    limit, walk_rows = int(limit), int(walk_rows)
    if not words:
        sql = (
            f"SELECT {columns} FROM catalog_listing l WHERE {where} ORDER BY {order} LIMIT {limit}"  # noqa: S608
        )
        return sql, where_params
    # 1. The walk: at most `walk_rows` entries of the sort index (index-only: filters, cursor,
    #    banned sellers and the signature are in it), the entries whose signature has every bit
    #    of every word, then those rows checked for real.
    # 2. Only when the walk found less than a page: the GIN gram index, all matches after the
    #    cursor, sorted (few, since the walk found them rare).
    names = [name for name, _ in keys]
    w_columns = ", ".join(f"w.{name}" for name in names)
    may = " AND ".join(f"(w.search_signature & s.sig{i}) = s.sig{i}" for i in range(len(words)))
    signatures = ", ".join(
        f"(SELECT catalog_word_signature(%s::text)) AS sig{i}" for i in range(len(words))
    )
    has = " AND ".join(_has_word(_TEXT) for _ in words)
    grams = " AND ".join(
        f"catalog_grams({_TEXT}, 3) @> (SELECT catalog_word_grams(%s::text))" for _ in words
    )
    sql = (
        f"WITH walk AS MATERIALIZED (SELECT {w_columns}"  # noqa: S608
        f" FROM (SELECT {columns}, l.search_signature FROM catalog_listing l WHERE {where}"
        f" ORDER BY {order} LIMIT {walk_rows}) AS w"
        f" CROSS JOIN (SELECT {signatures}) AS s"
        " JOIN catalog_listing l ON l.id = w.id"
        f" WHERE {may} AND {has} ORDER BY {_order_by(keys, 'w')} LIMIT {limit})"
        f" SELECT * FROM (SELECT * FROM walk WHERE (SELECT count(*) FROM walk) >= {limit}"
        f" UNION ALL SELECT * FROM (SELECT {columns} FROM catalog_listing l"
        f" WHERE {where} AND {grams} AND {has} ORDER BY {order} LIMIT {limit}) AS rare"
        f" WHERE (SELECT count(*) FROM walk) < {limit})"
        f" AS found ORDER BY {_order_by(keys, 'found')}"
    )
    return sql, [*where_params, *words, *words, *where_params, *words, *words]


def page_rows(
    *,
    ordering: Sequence[str],
    filters: dict[str, Any],
    after: Sequence[Any] | None,
    words: list[str],
    limit: int,
    walk_rows: int,
) -> list[tuple[dict[str, Any], tuple]]:
    """Up to `limit` public listings after `after` (the decoded cursor) in `ordering`, matching
    `filters` (category_ids, min_price, max_price, city_code, condition) and every word: each as
    (its summary, as `listing_summary_data` gives it; its sort key, id last)."""
    keys = [(name.lstrip("-"), name.startswith("-")) for name in ordering]
    where, where_params = _window(filters, keys, after)
    found, found_params = _found_sql(keys, where, where_params, words, limit, walk_rows)
    key_columns = ", ".join(f"found.{name}" for name, _ in keys)
    sql = (
        f"SELECT {_SUMMARY}, {key_columns} FROM ({found}) AS found"  # noqa: S608
        " JOIN catalog_listing l ON l.id = found.id JOIN accounts_user u ON u.id = l.seller_id"
        f" ORDER BY {_order_by(keys, 'found')}"
    )
    rows = _fetch(sql, [_param(p) for p in found_params])
    return [(_summary(row), tuple(row[_SUMMARY_WIDTH:])) for row in rows]


def _summary(row: tuple) -> dict[str, Any]:
    created_at: dt.datetime = row[14]
    return {
        "id": row[0],
        "title": row[1],
        "price": row[2],
        "original_price": row[3],
        "shipping_fee": row[4],
        "city_code": row[5],
        "condition": row[6],
        "cover_url": media_url(row[7]),
        "status": row[8],
        "views": row[9],
        "favorite_count": row[10],
        "seller": {"id": row[11], "nickname": row[12], "avatar_url": row[13]},
        "created_at": created_at,
    }
