"""Read a queryset's columns straight into a pandas frame, without a Python object per row.

Large reads (a million judgements for a dataset build) spend most of their time in the ORM turning
rows into tuples and decoding JSON. The queryset still says what to read, so the same filters and
expressions run on every database; on PostgreSQL its SQL is wrapped in ``COPY ... TO STDOUT`` and
the CSV stream is parsed by pandas' C reader (about ten times faster than iterating). Other
databases iterate the rows, as the ORM does.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import pandas as pd
import psycopg
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import F, Field, Func, QuerySet
from django.db.models.fields.json import compile_json_path

# Dtypes a column can be read as: pandas' nullable ones, so a NULL never turns an integer column
# into floats. No text: CSV cannot tell an empty string from NULL.
_DTYPES = {"int64": "Int64", "boolean": "boolean"}


class JSONValue(Func):
    """The scalar at ``path`` in a JSON column, as SQL of ``output_field``'s type; NULL where absent or null.

    Django's key transforms do not give this on SQLite: ``KeyTextTransform`` turns JSON ``true``
    and ``null`` into the words 'true' and 'null', which cast to 0. Integer steps of the path index
    arrays (``JSONValue("shown_order", 0, ...)``); an object or array at the path comes back as
    JSON text.
    """

    def __init__(self, column: str, *path: str | int, output_field: Field) -> None:
        super().__init__(F(column), output_field=output_field)
        self.path = tuple(str(step) for step in path)

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        return f"(({column} #>> %s)::{self.output_field.cast_db_type(connection)})", (*params, list(self.path))

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        return f"JSON_EXTRACT({column}, %s)", (*params, compile_json_path(self.path))


def queryset_frame(queryset: QuerySet, columns: Mapping[str, str]) -> pd.DataFrame:
    """The queryset's ``columns`` (field or annotation name -> "int64" or "boolean").

    Every column is nullable (pandas' ``Int64`` and ``boolean`` dtypes); rows come in the
    queryset's order.
    """
    unknown = set(columns.values()) - set(_DTYPES)
    if unknown:
        raise ValueError(f"unknown column types {sorted(unknown)}; choose from {', '.join(_DTYPES)}")
    names = list(columns)
    dtypes = {name: _DTYPES[kind] for name, kind in columns.items()}
    rows = queryset.values_list(*names)
    connection = connections[rows.db]
    if connection.vendor == "postgresql":
        try:
            frame = _copied(connection, rows, names, dtypes)
        except EmptyResultSet:  # the ORM knows there are no rows (say, pk__in=[]) and makes no SQL
            frame = pd.DataFrame(columns=names)
    else:
        frame = pd.DataFrame.from_records(list(rows.iterator(chunk_size=5000)), columns=names)
    return frame.astype(dtypes) if len(frame) else pd.DataFrame({n: pd.Series(dtype=d) for n, d in dtypes.items()})


def _copied(connection, rows: QuerySet, names: list[str], dtypes: dict[str, str]) -> pd.DataFrame:
    sql, params = rows.query.sql_with_params()
    text = io.BytesIO()
    with connection.cursor() as cursor:
        raw = cursor.cursor
        # COPY takes no bound parameters, so the statement is composed client-side (psycopg quotes
        # each value as a literal), whichever binding the connection is configured with.
        statement = psycopg.ClientCursor(raw.connection).mogrify(sql, params)
        with raw.copy(f"COPY ({statement}) TO STDOUT WITH (FORMAT csv)") as copy:
            for row in copy:  # psycopg hands over one row at a time
                text.write(row)
    if not text.tell():
        return pd.DataFrame(columns=names)
    text.seek(0)
    return pd.read_csv(
        text,
        header=None,
        names=names,
        dtype=dtypes,
        true_values=["t"],
        false_values=["f"],
        keep_default_na=False,
        na_values=[""],
    )
