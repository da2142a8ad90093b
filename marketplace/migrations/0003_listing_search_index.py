"""Keyword search indexes (docs/catalog.md "Search").

PostgreSQL: pg_trgm GIN indexes on UPPER(title) and UPPER(description), the expressions
Django's `icontains` compiles to, so `LIKE '%词语%'` uses them (creating the extension needs a
superuser or a database owner on PostgreSQL 13+ where pg_trgm is a trusted extension).
SQLite: an external-content FTS5 table with the trigram tokenizer, kept in sync by triggers.
"""

from django.db import migrations

PG_FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS listing_title_trgm ON catalog_listing "
    "USING gin (UPPER(title::text) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS listing_description_trgm ON catalog_listing "
    "USING gin (UPPER(description) gin_trgm_ops)",
]
PG_BACKWARD = [
    "DROP INDEX IF EXISTS listing_title_trgm",
    "DROP INDEX IF EXISTS listing_description_trgm",
]

SQLITE_FORWARD = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS catalog_listing_fts USING fts5("
    "title, description, content='catalog_listing', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS catalog_listing_fts_ai AFTER INSERT ON catalog_listing BEGIN "
    "INSERT INTO catalog_listing_fts(rowid, title, description) "
    "VALUES (new.id, new.title, new.description); END",
    "CREATE TRIGGER IF NOT EXISTS catalog_listing_fts_ad AFTER DELETE ON catalog_listing BEGIN "
    "INSERT INTO catalog_listing_fts(catalog_listing_fts, rowid, title, description) "
    "VALUES ('delete', old.id, old.title, old.description); END",
    "CREATE TRIGGER IF NOT EXISTS catalog_listing_fts_au AFTER UPDATE OF title, description "
    "ON catalog_listing BEGIN "
    "INSERT INTO catalog_listing_fts(catalog_listing_fts, rowid, title, description) "
    "VALUES ('delete', old.id, old.title, old.description); "
    "INSERT INTO catalog_listing_fts(rowid, title, description) "
    "VALUES (new.id, new.title, new.description); END",
    "INSERT INTO catalog_listing_fts(catalog_listing_fts) VALUES ('rebuild')",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS catalog_listing_fts_ai",
    "DROP TRIGGER IF EXISTS catalog_listing_fts_ad",
    "DROP TRIGGER IF EXISTS catalog_listing_fts_au",
    "DROP TABLE IF EXISTS catalog_listing_fts",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0002_catalog")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": PG_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": PG_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        ),
    ]
