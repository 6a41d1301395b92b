"""Reads shared by the project's own pages."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, connection
from django.db.models import QuerySet

from rlhf_platform.models import ApiToken


def database_is_reachable() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        return False


def tokens_of_user(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """The user's API tokens, newest first, revoked and expired ones included (they show when)."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def tokens_all(*, username: str = "") -> QuerySet[ApiToken]:
    """Everyone's API tokens with their owners, newest first; only ``username``'s if given."""
    tokens = ApiToken.objects.select_related("user", "revoked_by").order_by("-created_at", "-id")
    if username:
        tokens = tokens.filter(user__username=username)
    return tokens
