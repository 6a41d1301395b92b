"""Reads shared by the project's own pages."""

from __future__ import annotations

from django.db import DatabaseError, connection


def database_is_reachable() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        return False
