import os

import pytest
from django.db import connection


@pytest.mark.django_db
def test_it_runs_on_postgres_when_ci_requires_it():
    """CI sets REQUIRE_POSTGRES=1 so the suite cannot silently fall back to SQLite."""
    if os.environ.get("REQUIRE_POSTGRES") != "1":
        pytest.skip("REQUIRE_POSTGRES is not set; the local run may use SQLite")
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        assert cursor.fetchone()[0].startswith("PostgreSQL")
