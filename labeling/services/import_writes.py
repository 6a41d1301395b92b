"""Writing an import's checked rows: ``COPY`` on PostgreSQL, multi-row ``INSERT`` on SQLite.

Both writers take the same rows (``TaskRow``, already validated by ``labeling.services.imports``)
and leave the same tasks and responses behind; ``batch_writer`` picks one by the database's
vendor, once per import, as Django picks a backend. The import tests run on both databases.

PostgreSQL: ``COPY ... FROM STDIN`` through psycopg 3 streams rows as text, with no statement
parameter per value. The multi-row INSERT spent most of a large import there: psycopg parses
each statement of up to 65,535 placeholders, and Django's debug cursor quotes every one of them
(DEBUG on, as ``make demo`` serves). Task ids are taken from the table's own sequence first, so
the responses can be copied with their task's id in the same pass; ids taken by an import that
is then rolled back are skipped, as after any rolled-back insert.

SQLite (and any other database): a multi-row ``INSERT ... RETURNING id`` without a model
instance per row.

Neither opens a transaction: the import's own ``transaction.atomic`` holds every batch, so a
bad row or a lost race leaves nothing behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from labeling.models import Response, Task


@dataclass
class TaskRow:
    external_id: str
    prompt: str | list[dict[str, str]]
    responses: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    gold: dict[str, Any] | None = None


BatchWriter = Callable[[int, list[TaskRow]], None]


# --- PostgreSQL ----------------------------------------------------------------------------

RESERVE_TASK_IDS = "SELECT nextval(pg_get_serial_sequence('labeling_task', 'id')) FROM generate_series(1, %s)"
COPY_TASKS = (
    "COPY labeling_task (id, campaign_id, external_id, prompt, meta, gold, is_gold,"
    " response_count, slots_taken, judgement_count, created_at) FROM STDIN"
)
# id, html and rendered_with take their column defaults.
COPY_RESPONSES = "COPY labeling_response (task_id, position, text, model_name, meta) FROM STDIN"


def _write_batch_postgresql(db: BaseDatabaseWrapper, campaign_id: int, rows: list[TaskRow]) -> None:
    now = timezone.now()
    # JSON goes as text, which COPY parses with jsonb's own input function; Task's JSON fields
    # have no encoder, so json.dumps is what the ORM would send too. Metas are dicts, mostly
    # empty: "{}" saves a call per response.
    dumps = json.dumps
    # COPY is reached through psycopg's cursor, outside Django's error translation: without it a
    # unique violation (an import racing this one) would not arrive as IntegrityError.
    with db.cursor() as cursor, db.wrap_database_errors:
        cursor.execute(RESERVE_TASK_IDS, [len(rows)])
        task_ids = [task_id for (task_id,) in cursor.fetchall()]
        with cursor.copy(COPY_TASKS) as copy:
            for task_id, row in zip(task_ids, rows, strict=True):
                copy.write_row(
                    (
                        task_id,
                        campaign_id,
                        row.external_id,
                        dumps(row.prompt),
                        dumps(row.meta) if row.meta else "{}",
                        None if row.gold is None else dumps(row.gold),
                        row.gold is not None,
                        len(row.responses),
                        0,
                        0,
                        now,
                    )
                )
        with cursor.copy(COPY_RESPONSES) as copy:
            for task_id, row in zip(task_ids, rows, strict=True):
                for position, response in enumerate(row.responses):
                    meta = response["meta"]
                    copy.write_row(
                        (task_id, position, response["text"], response["model"], dumps(meta) if meta else "{}")
                    )


# --- SQLite and the rest -------------------------------------------------------------------

TASK_COLUMNS = (
    "campaign", "external_id", "prompt", "meta", "gold", "is_gold",
    "response_count", "slots_taken", "judgement_count", "created_at",
)  # fmt: skip
RESPONSE_COLUMNS = ("task", "position", "text", "model_name", "meta")


def _insert_rows(
    db: BaseDatabaseWrapper, model: type[models.Model], names: tuple[str, ...], rows: list[tuple], *, returning: bool
) -> list[int]:
    """Multi-row INSERT of already-checked rows, without building a model instance per row.

    The ORM's ``bulk_create`` spends most of a large import compiling one model instance
    per row; this writes the same SQL directly. Values go through each field's
    ``get_db_prep_save`` so they are stored exactly as the ORM would store them.
    """
    fields = [model._meta.get_field(name) for name in names]
    columns = [field.column for field in fields]
    quote = db.ops.quote_name
    prepared = [
        tuple(field.get_db_prep_save(value, db) for field, value in zip(fields, row, strict=True)) for row in rows
    ]
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    # Identifiers come from the model and are quoted; every value is a parameter.
    head = f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) VALUES "  # noqa: S608
    per_statement = max(1, (db.features.max_query_params or 10_000) // len(columns))
    ids: list[int] = []
    with db.cursor() as cursor:
        for start in range(0, len(prepared), per_statement):
            chunk = prepared[start : start + per_statement]
            sql = head + ", ".join([row_sql] * len(chunk))
            params = [value for row in chunk for value in row]
            if returning:
                # Rows come back in insertion order on SQLite >= 3.35 (and PostgreSQL), which
                # Django's own bulk_create relies on as well.
                cursor.execute(sql + f" RETURNING {quote(model._meta.pk.column)}", params)
                ids.extend(row[0] for row in cursor.fetchall())
            else:
                cursor.execute(sql, params)
    return ids


def _write_batch_inserting(db: BaseDatabaseWrapper, campaign_id: int, rows: list[TaskRow]) -> None:
    now: datetime = timezone.now()
    task_ids = _insert_rows(
        db,
        Task,
        TASK_COLUMNS,
        [
            (
                campaign_id,
                row.external_id,
                row.prompt,
                row.meta,
                row.gold,
                row.gold is not None,
                len(row.responses),
                0,
                0,
                now,
            )
            for row in rows
        ],
        returning=True,
    )
    _insert_rows(
        db,
        Response,
        RESPONSE_COLUMNS,
        [
            (task_id, position, r["text"], r["model"], r["meta"])
            for task_id, row in zip(task_ids, rows, strict=True)
            for position, r in enumerate(row.responses)
        ],
        returning=False,
    )


BATCH_WRITERS = {"postgresql": _write_batch_postgresql}


def batch_writer() -> BatchWriter:
    """The function that writes one batch of rows to the database tasks are written to."""
    # The connection itself, not the ``django.db.connection`` proxy: the proxy looks it up
    # again on every attribute access, which adds up over hundreds of thousands of values.
    db = connections[router.db_for_write(Task)]
    write = BATCH_WRITERS.get(db.vendor, _write_batch_inserting)
    return lambda campaign_id, rows: write(db, campaign_id, rows)
