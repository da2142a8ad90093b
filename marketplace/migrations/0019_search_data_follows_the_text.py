"""A listing's search data is computed when its text changes, not on every write (issue 14).

`search_signature` was a stored generated column: PostgreSQL recomputes those on every UPDATE of
the row, whatever it changes, so reserving a listing, releasing a sweep's 2,000 or counting a
view ran `catalog_grams` and an md5 per gram each time (the larger part of such an UPDATE). It
becomes a plain column kept by two triggers: on INSERT (the ORM, COPY), and on an UPDATE whose
title or description differ (the ORM's whole-row save with the same text does not fire it).

The gram index (`listing_search_grams`) only serves the public search, which reads listings on
sale: it becomes partial, so a move to reserved, sold or off the shelf no longer evaluates its
expression and inserts a GIN key per gram. On a large live table build the new index with
CREATE INDEX CONCURRENTLY by hand first (under another name, then swap).
"""

from django.db import migrations

SIGNATURE = "catalog_signature(catalog_grams(catalog_search_text(NEW.title::text, NEW.description), 2))"
GRAMS = "catalog_grams(catalog_search_text(title::text, description), 3)"
# As migration 0011 built them.
INCLUDE = "INCLUDE (price_fen, category_id, seller_id, search_signature)"
SORT_INDEXES = {
    "listing_newest": "status, approved_at DESC, id DESC",
    "listing_hot": "status, views DESC, id DESC",
    "listing_price": "status, price_fen, id",
}

PG_FORWARD = [
    "ALTER TABLE catalog_listing ALTER COLUMN search_signature DROP EXPRESSION",
    "CREATE OR REPLACE FUNCTION catalog_listing_set_signature() RETURNS trigger "
    f"LANGUAGE plpgsql AS $$ BEGIN NEW.search_signature := {SIGNATURE}; RETURN NEW; END $$",
    "CREATE TRIGGER listing_signature_on_insert BEFORE INSERT ON catalog_listing "
    "FOR EACH ROW EXECUTE FUNCTION catalog_listing_set_signature()",
    "CREATE TRIGGER listing_signature_on_text BEFORE UPDATE OF title, description "
    "ON catalog_listing FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title "
    "OR OLD.description IS DISTINCT FROM NEW.description) "
    "EXECUTE FUNCTION catalog_listing_set_signature()",
    "DROP INDEX IF EXISTS listing_search_grams",
    f"CREATE INDEX listing_search_grams ON catalog_listing USING gin ({GRAMS}) "
    "WHERE status = 'on_sale'",
    "ANALYZE catalog_listing",
]
PG_BACKWARD = [
    "DROP INDEX IF EXISTS listing_search_grams",
    f"CREATE INDEX listing_search_grams ON catalog_listing USING gin ({GRAMS})",
    "DROP TRIGGER IF EXISTS listing_signature_on_text ON catalog_listing",
    "DROP TRIGGER IF EXISTS listing_signature_on_insert ON catalog_listing",
    "DROP FUNCTION IF EXISTS catalog_listing_set_signature()",
    # Back to a generated column (its values recomputed by the ALTER); dropping the column
    # dropped the sort indexes that INCLUDE it (migration 0011): built again.
    "ALTER TABLE catalog_listing DROP COLUMN search_signature",
    "ALTER TABLE catalog_listing ADD COLUMN search_signature bit(512) GENERATED ALWAYS AS ("
    "catalog_signature(catalog_grams(catalog_search_text(title::text, description), 2))) STORED",
    *(
        f"CREATE INDEX IF NOT EXISTS {name} ON catalog_listing ({keys}) {INCLUDE}"
        for name, keys in SORT_INDEXES.items()
    ),
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0018_staff_exports")]

    operations = [migrations.RunPython(_run(PG_FORWARD), _run(PG_BACKWARD))]
