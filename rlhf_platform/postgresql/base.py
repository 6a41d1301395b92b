"""Django's PostgreSQL backend, kept under PostgreSQL's limit of 65,535 parameters a statement.

With server-side parameters (``server_side_binding``, see settings), every value of a statement
is a separate parameter, and PostgreSQL refuses statements with more than 65,535 of them.
Django 5.2 knows no such limit for PostgreSQL, so deleting a campaign of more than 65,535
responses (whose cascade deletes them by id) or a large ``bulk_create`` failed. Here those
batches are sized to fit, as Django already does for SQLite's own limit.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base, features, operations
from django.utils.functional import cached_property

MAX_STATEMENT_PARAMETERS = 65_535


class DatabaseFeatures(features.DatabaseFeatures):
    @cached_property
    def max_query_params(self) -> int | None:
        return MAX_STATEMENT_PARAMETERS if self.uses_server_side_binding else None


class DatabaseOperations(operations.DatabaseOperations):
    def bulk_batch_size(self, fields: Any, objs: Any) -> int:
        limit = self.connection.features.max_query_params
        if limit is None:
            return super().bulk_batch_size(fields, objs)
        return max(1, min(len(objs), limit // max(len(fields), 1)))


class DatabaseWrapper(base.DatabaseWrapper):
    features_class = DatabaseFeatures
    ops_class = DatabaseOperations
