"""API token authentication that reads the token, its user and the user's roles in one query.

DRF's ``TokenAuthentication`` loads the token with its user through the ORM, and the role
check that every API view makes then asks for the user's groups: two queries, and building
them costs more than running them. Here one statement returns the user's row once per group
(a user has one or two), and the group names are kept on the user the way
``rlhf_platform.roles`` caches them, so the role check asks nothing more. The answers are
DRF's: 401 with ``Invalid token.`` or ``User inactive or deleted.``.
"""

from __future__ import annotations

from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import connection
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from rlhf_platform.roles import remember_group_names


@cache
def _token_query() -> tuple[str, list[str]]:
    """The statement, and the user fields it returns, in order (built once from the models)."""
    user_model = get_user_model()
    user_fields = list(user_model._meta.concrete_fields)
    quote = connection.ops.quote_name
    tables = {
        "token": Token._meta.db_table,
        "user": user_model._meta.db_table,
        "membership": user_model.groups.through._meta.db_table,
        "group": Group._meta.db_table,
    }
    token, user, membership, group = (quote(name) for name in tables.values())
    columns = ", ".join(f"u.{quote(field.column)}" for field in user_fields)
    # Every name comes from the models' metadata, quoted; the key is a parameter.
    sql = (
        f"SELECT t.created, g.name, {columns} FROM {token} t "  # noqa: S608
        f"JOIN {user} u ON u.id = t.user_id "
        f"LEFT JOIN {membership} m ON m.user_id = u.id "
        f"LEFT JOIN {group} g ON g.id = m.group_id "
        "WHERE t.key = %s"
    )
    return sql, [field.attname for field in user_fields]


def user_for_token(key: str) -> tuple[AbstractBaseUser, Token] | None:
    """The user of API token ``key`` with its group names cached, and the token; None if no such token."""
    sql, user_fields = _token_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, [key])
        rows = cursor.fetchall()
    if not rows:
        return None
    user = get_user_model().from_db(connection.alias, user_fields, rows[0][2:])
    remember_group_names(user, [row[1] for row in rows if row[1] is not None])
    token = Token.from_db(connection.alias, ["key", "user_id", "created"], [key, user.pk, rows[0][0]])
    token.user = user
    return user, token


class TokenAuthentication(authentication.TokenAuthentication):
    """``Authorization: Token <key>``, as DRF's, in one query."""

    def authenticate_credentials(self, key: str) -> tuple[AbstractBaseUser, Token]:
        found = user_for_token(key)
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        user, token = found
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return user, token
