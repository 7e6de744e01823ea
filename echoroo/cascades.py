"""Foreign keys that cascade in PostgreSQL itself, so that deleting a dataset is one DELETE statement.

Django's `on_delete=CASCADE` is carried out by Django: before deleting a dataset it reads every
recording, clip, prediction and embedding row that hangs from it, in batches, and deletes them
table by table. For a season of field recordings (millions of rows) that is minutes of queries and
gigabytes of memory inside one web request. With the same rule written into each foreign key
(`ON DELETE CASCADE`, `ON DELETE SET NULL`), PostgreSQL does it in one statement; echoroo.deletion
sends that statement. The models keep their `on_delete`, so Django's own deletes stay correct.
"""

from __future__ import annotations

from django.db import models

PROJECT_APPS = ("echoroo", "inference", "embeddings", "classifiers", "validation", "annotations")
# pg_constraint.confdeltype for each on_delete written into the database.
DATABASE_RULES = {models.CASCADE: ("c", "CASCADE"), models.SET_NULL: ("n", "SET NULL")}


def foreign_keys(apps) -> list[tuple[str, str, str, str, object]]:
    """(table, column, referenced table, referenced column, on_delete) of the project's foreign keys."""
    found = []
    for model in apps.get_models(include_auto_created=True):
        if model._meta.app_label not in PROJECT_APPS or not model._meta.managed:
            continue
        for field in model._meta.local_fields:
            if field.is_relation and field.many_to_one and field.db_constraint:
                target = field.target_field
                found.append(
                    (
                        model._meta.db_table,
                        field.column,
                        target.model._meta.db_table,
                        target.column,
                        field.remote_field.on_delete,
                    )
                )
    return found


def constraints_of(cursor, table: str) -> dict[str, tuple[str, str]]:
    """Each single-column foreign key of `table`: column -> (constraint name, confdeltype)."""
    cursor.execute(
        "SELECT a.attname, c.conname, c.confdeltype FROM pg_constraint c"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
        " WHERE c.contype = 'f' AND c.conrelid = %s::regclass AND array_length(c.conkey, 1) = 1",
        [table],
    )
    return {column: (name, rule) for column, name, rule in cursor.fetchall()}


def write_rules_into_database(apps, schema_editor) -> None:
    """Give each CASCADE / SET_NULL foreign key of the project the same rule in PostgreSQL."""
    quote = schema_editor.quote_name
    existing: dict[str, dict[str, tuple[str, str]]] = {}  # table -> its foreign keys, read once
    with schema_editor.connection.cursor() as cursor:
        for table, column, target_table, target_column, on_delete in foreign_keys(apps):
            if on_delete not in DATABASE_RULES:
                continue  # PROTECT, DO_NOTHING...: Django's check (or none) stays the rule
            wanted, words = DATABASE_RULES[on_delete]
            if table not in existing:
                existing[table] = constraints_of(cursor, table)
            name, rule = existing[table].get(column, (None, None))
            if name is None or rule == wanted:
                continue
            cursor.execute(
                f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)},"
                f" ADD CONSTRAINT {quote(name)} FOREIGN KEY ({quote(column)})"
                f" REFERENCES {quote(target_table)} ({quote(target_column)})"
                f" ON DELETE {words} DEFERRABLE INITIALLY DEFERRED"
            )
