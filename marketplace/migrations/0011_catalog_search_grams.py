"""Uncached list and keyword search at catalog scale (docs/catalog.md "Search", issue 14).

PostgreSQL only (SQLite keeps its FTS5 table: correct, not meant to be fast):

- `catalog_grams(text, n)`: the distinct 1- to n-character substrings of a text (spaces and
  line breaks excluded: a search word never contains them). One GIN index on the 1-, 2- and
  3-grams of UPPER(title || '\n' || description) replaces the two pg_trgm indexes: a word of one
  or two characters (包, 手机) is one exact key in it, a longer one its trigrams, so every word
  length has an index path (pg_trgm has none below three characters).
- `search_signature`: a 512-bit Bloom signature of the listing's 1- and 2-grams (two bits per
  gram), a generated column, so every write path (the ORM, set-based updates, COPY) keeps it
  right without code. It is INCLUDEd in the three sort indexes together with price, category
  and seller, so a search walks a sort index in order and rejects most non-matching rows from
  the index alone (an index-only scan), reading the row only when the signature says "maybe".
- The sort indexes keep their names and keys (Django's model state is unchanged); PostgreSQL's
  copies gain the INCLUDE columns. Building them takes a write lock on catalog_listing: on a
  large live table run the statements with CREATE INDEX CONCURRENTLY by hand first.
"""

from django.db import migrations

BITS = 512

FUNCTIONS = [
    # The searched text: one string, so a word matches the title or the description; the line
    # break keeps a word from matching across the two.
    "CREATE OR REPLACE FUNCTION catalog_search_text(title text, description text) RETURNS text "
    "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS "
    "$$ SELECT upper(title || E'\\n' || description) $$",
    "CREATE OR REPLACE FUNCTION catalog_grams(t text, longest int) RETURNS text[] "
    "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE COST 5000 AS $$ "
    "SELECT coalesce(array_agg(DISTINCT g), '{}') FROM ("
    " SELECT substr(t, i, n) AS g FROM generate_series(1, longest) AS n,"
    " generate_series(1, char_length(t) - n + 1) AS i) AS grams "
    "WHERE strpos(g, ' ') = 0 AND strpos(g, E'\\n') = 0 $$",
    # A word's keys in the GIN index: itself up to three characters, else its trigrams.
    "CREATE OR REPLACE FUNCTION catalog_word_grams(word text) RETURNS text[] "
    "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ "
    "SELECT CASE WHEN char_length(u) <= 3 THEN ARRAY[u] ELSE ARRAY("
    " SELECT DISTINCT substr(u, i, 3) FROM generate_series(1, char_length(u) - 2) AS i) END "
    "FROM (SELECT upper(word) AS u) AS w $$",
    # md5, not hashtext: the stored signatures must mean the same after a PostgreSQL upgrade.
    f"CREATE OR REPLACE FUNCTION catalog_signature(grams text[]) RETURNS bit({BITS}) "
    "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ "
    f"SELECT coalesce(bit_or(set_bit(set_bit(repeat('0', {BITS})::bit({BITS}),"
    f" mod(('x' || substr(h, 1, 4))::bit(16)::int, {BITS}), 1),"
    f" mod(('x' || substr(h, 5, 4))::bit(16)::int, {BITS}), 1)), repeat('0', {BITS})::bit({BITS})) "
    "FROM (SELECT md5(g) AS h FROM unnest(grams) AS g) AS hashed $$",
    # A word's bits: its own for one character, else those of its bigrams.
    f"CREATE OR REPLACE FUNCTION catalog_word_signature(word text) RETURNS bit({BITS}) "
    "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ "
    "SELECT catalog_signature(CASE WHEN char_length(u) = 1 THEN ARRAY[u] ELSE ARRAY("
    " SELECT substr(u, i, 2) FROM generate_series(1, char_length(u) - 1) AS i) END) "
    "FROM (SELECT upper(word) AS u) AS w $$",
]
INCLUDE = "INCLUDE (price_fen, category_id, seller_id, search_signature)"
SORT_INDEXES = {
    "listing_newest": "status, approved_at DESC, id DESC",
    "listing_hot": "status, views DESC, id DESC",
    "listing_price": "status, price_fen, id",
}

PG_FORWARD = [
    *FUNCTIONS,
    f"ALTER TABLE catalog_listing ADD COLUMN IF NOT EXISTS search_signature bit({BITS}) "
    "GENERATED ALWAYS AS (catalog_signature(catalog_grams("
    "catalog_search_text(title::text, description), 2))) STORED",
    "DROP INDEX IF EXISTS listing_title_trgm",
    "DROP INDEX IF EXISTS listing_description_trgm",
    "CREATE INDEX IF NOT EXISTS listing_search_grams ON catalog_listing "
    "USING gin (catalog_grams(catalog_search_text(title::text, description), 3))",
    *(f"DROP INDEX IF EXISTS {name}" for name in SORT_INDEXES),
    *(
        f"CREATE INDEX {name} ON catalog_listing ({keys}) {INCLUDE}"
        for name, keys in SORT_INDEXES.items()
    ),
    "ANALYZE catalog_listing",
]
PG_BACKWARD = [
    *(f"DROP INDEX IF EXISTS {name}" for name in SORT_INDEXES),
    *(f"CREATE INDEX {name} ON catalog_listing ({keys})" for name, keys in SORT_INDEXES.items()),
    "DROP INDEX IF EXISTS listing_search_grams",
    "ALTER TABLE catalog_listing DROP COLUMN IF EXISTS search_signature",
    "CREATE INDEX IF NOT EXISTS listing_title_trgm ON catalog_listing "
    "USING gin (UPPER(title::text) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS listing_description_trgm ON catalog_listing "
    "USING gin (UPPER(description) gin_trgm_ops)",
    "DROP FUNCTION IF EXISTS catalog_word_signature(text)",
    "DROP FUNCTION IF EXISTS catalog_signature(text[])",
    "DROP FUNCTION IF EXISTS catalog_word_grams(text)",
    "DROP FUNCTION IF EXISTS catalog_grams(text, int)",
    "DROP FUNCTION IF EXISTS catalog_search_text(text, text)",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0010_order_status_id")]

    operations = [migrations.RunPython(_run(PG_FORWARD), _run(PG_BACKWARD))]
