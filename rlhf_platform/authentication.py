"""API token authentication that reads the token, its user and the user's roles in one query.

DRF's ``TokenAuthentication`` loads the token with its user through the ORM, and the role
check that every API view makes then asks for the user's groups: two queries, and building
them costs more than running them. Here one statement returns the user's row once per group
(a user has one or two), and the group names are kept on the user the way
``rlhf_platform.roles`` caches them, so the role check asks nothing more. Tokens are looked up
by the SHA-256 digest of the key (``rlhf_platform.models.ApiToken``); the same statement says
whether the token is revoked, expired, or due to have its last use recorded, so none of that
costs a query. The answers are DRF's: 401 with ``Invalid token.`` (unknown or revoked),
``Token expired.`` or ``User inactive or deleted.``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import DatabaseError, connection
from django.utils import timezone
from rest_framework import authentication, exceptions

from rlhf_platform.models import ApiToken, token_digest
from rlhf_platform.roles import remember_group_names

logger = logging.getLogger(__name__)

# Columns of the statement before the user's: token id and name, three flags, then a group name.
_LEADING_COLUMNS = 6


@cache
def _token_query() -> tuple[str, list[str]]:
    """The statement, and the user fields it returns, in order (built once from the models)."""
    user_model = get_user_model()
    user_fields = list(user_model._meta.concrete_fields)
    quote = connection.ops.quote_name
    tables = {
        "token": ApiToken._meta.db_table,
        "user": user_model._meta.db_table,
        "membership": user_model.groups.through._meta.db_table,
        "group": Group._meta.db_table,
    }
    token, user, membership, group = (quote(name) for name in tables.values())
    columns = ", ".join(f"u.{quote(field.column)}" for field in user_fields)
    # Every name comes from the models' metadata, quoted; the digest and the times are parameters.
    # The flags are comparisons, so both databases answer them without a date to parse here.
    sql = (
        "SELECT t.id, t.name, "  # noqa: S608
        "CASE WHEN t.revoked_at IS NULL THEN 0 ELSE 1 END, "
        "CASE WHEN t.expires_at IS NOT NULL AND t.expires_at <= %s THEN 1 ELSE 0 END, "
        "CASE WHEN t.last_used_at IS NULL OR t.last_used_at < %s THEN 1 ELSE 0 END, "
        f"g.name, {columns} FROM {token} t "
        f"JOIN {user} u ON u.id = t.user_id "
        f"LEFT JOIN {membership} m ON m.user_id = u.id "
        f"LEFT JOIN {group} g ON g.id = m.group_id "
        "WHERE t.digest = %s"
    )
    return sql, [field.attname for field in user_fields]


class TokenRefused(Exception):
    """A known token that may not be used; the message is DRF's answer."""


def user_for_token(key: str) -> tuple[AbstractBaseUser, ApiToken] | None:
    """The user of API token ``key`` with its group names cached, and the token; None if no such token.

    Raises ``TokenRefused`` for a revoked or expired token. Records the token's use when the last
    record is older than API_TOKEN_LAST_USED_INTERVAL_S (a second query, that often at most).
    """
    sql, user_fields = _token_query()
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.API_TOKEN_LAST_USED_INTERVAL_S)
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(sql, [adapt(now), adapt(stale_before), token_digest(key)])
        rows = cursor.fetchall()
    if not rows:
        return None
    token_id, name, revoked, expired, stale = rows[0][:5]
    if revoked:
        raise TokenRefused("Invalid token.")
    if expired:
        raise TokenRefused("Token expired.")
    user = get_user_model().from_db(connection.alias, user_fields, rows[0][_LEADING_COLUMNS:])
    remember_group_names(user, [row[5] for row in rows if row[5] is not None])
    token = ApiToken.from_db(connection.alias, ["id", "user_id", "name"], [token_id, user.pk, name])
    token.user = user
    if stale and user.is_active:
        # Imported here: DRF imports this module while rest_framework.views is half loaded, and the
        # services import it back (through rlhf_platform.errors).
        from rlhf_platform.services import token_mark_used

        try:
            token_mark_used(token_id=token_id, now=now)
        except DatabaseError:  # best effort: a locked database must not fail the request it authenticates
            logger.warning("could not record the use of token %s", token_id, exc_info=True)
    return user, token


class TokenAuthentication(authentication.TokenAuthentication):
    """``Authorization: Token <key>``, as DRF's, in one query."""

    def authenticate_credentials(self, key: str) -> tuple[AbstractBaseUser, ApiToken]:
        try:
            found = user_for_token(key)
        except TokenRefused as refused:
            raise exceptions.AuthenticationFailed(str(refused)) from None
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        user, token = found
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return user, token
