"""Helpers for the hot paths written in SQL (claim and submit): values to and from the database.

The same statements run on PostgreSQL and SQLite; these convert values the way the ORM
would for the database in use (JSON columns, datetimes) and add row locks where the
database has them.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Model

_NAMED_PARAMETER = re.compile(r"%\((\w+)\)s")


@lru_cache(maxsize=128)
def _parameter_names(sql: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_NAMED_PARAMETER.findall(sql)))


def execute(cursor: CursorWrapper, sql: str, params: dict[str, Any]) -> None:
    """Run ``sql`` with only the parameters it names from ``params``.

    The hot paths keep one dict of parameters for several statements. Giving a statement
    more than it uses is not harmless: Django's debug cursor (DEBUG on, as ``make demo``
    serves) quotes every parameter it is given, and SQLite cannot quote a list.
    """
    cursor.execute(sql, {name: params[name] for name in _parameter_names(sql)})


def field_from_db(model: type[Model], field: str, value: Any) -> Any:
    """A column's raw value as the model field holds it (JSON parsed)."""
    return model._meta.get_field(field).from_db_value(value, None, connection)


def field_to_db(model: type[Model], field: str, value: Any) -> Any:
    """A model field's value as a statement parameter (JSON adapted)."""
    return model._meta.get_field(field).get_db_prep_value(value, connection)


def instance_from_db(model: type[Model], values: dict[str, Any]) -> Model:
    """An instance of the columns read, by attribute name; the others load on access, as with ``.only()``."""
    names = [field.attname for field in model._meta.concrete_fields if field.attname in values]
    return model.from_db(connection.alias, names, [values[name] for name in names])


def datetime_to_db(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def with_row_locks(sql: str, *, of: str, skip_locked: bool = False) -> str:
    """Fill ``sql``'s ``{lock}`` with ``FOR UPDATE OF <of>`` where the database locks rows.

    SQLite has no row locks; its write transactions are serialized instead (IMMEDIATE).
    """
    features = connection.features
    if skip_locked and features.has_select_for_update_skip_locked:
        return sql.format(lock=f" FOR UPDATE OF {of} SKIP LOCKED")
    if not skip_locked and features.has_select_for_update_of:
        return sql.format(lock=f" FOR UPDATE OF {of}")
    return sql.format(lock="")


def writes_in_one_statement() -> bool:
    """Whether the database can do several writes in one statement (PostgreSQL's data-modifying
    ``WITH``, subqueries in ``RETURNING``), which the hot paths use to save round trips."""
    return connection.vendor == "postgresql"


def one_statement_atomic() -> contextlib.AbstractContextManager[Any]:
    """Around a statement that is atomic by itself (autocommit), when it is meant to stand alone.

    Outside a transaction it adds nothing: no BEGIN and COMMIT round trips. Inside one (the
    caller's, or a test's) it is a savepoint, so that the statement's failure, such as a unique
    violation the caller turns into an answer, does not abort the enclosing transaction.
    """
    return transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
