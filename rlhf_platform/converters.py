"""Path converters of the platform's URLs (and websocket routes).

``<id:name>``: a database primary key. Django's ``<int:...>`` matches any run of digits, and an id
at or above 2^63 then reaches the database, which cannot hold it: SQLite raises ``OverflowError``
and PostgreSQL ``DataError``, a 500 instead of a 404. This converter matches only ids a bigint
column can hold, so anything else is simply not a route (404, or a refused websocket).
"""

from __future__ import annotations

# The largest value of a signed 64-bit column (Django's BigAutoField on every database).
MAX_ID = 2**63 - 1


class DatabaseIdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValueError(f"{value} is beyond any database id")  # Django: the route does not match
        return number

    def to_url(self, value: int) -> str:
        return str(value)
