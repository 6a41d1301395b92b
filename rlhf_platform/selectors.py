"""Reads shared by the project's own pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from auditlog.models import LogEntry
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, connection
from django.db.models import QuerySet

from rlhf_platform.audit import TARGET_TYPES, Action
from rlhf_platform.models import ApiToken


def database_is_reachable() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        return False


def audit_entries(
    *,
    actor: str = "",
    action: str = "",
    target_type: str = "",
    target_id: int | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> QuerySet[LogEntry]:
    """Audit log entries, newest first, filtered: by the actor's username (``"system"`` for none), the
    action (``rlhf_platform.audit.Action``), the kind of object (its model name) and its id, and
    the days from ``since`` to ``until`` (both included, UTC)."""
    entries = LogEntry.objects.select_related("actor", "content_type").order_by("-timestamp", "-id")
    if actor == "system":
        entries = entries.filter(actor=None)
    elif actor:
        entries = entries.filter(actor__username=actor)
    if action:
        entries = entries.filter(additional_data__action=action)
    if target_type:
        entries = entries.filter(content_type__model=target_type)
    if target_id is not None:
        entries = entries.filter(object_id=target_id)
    if since is not None:
        entries = entries.filter(timestamp__gte=dt.datetime.combine(since, dt.time.min, tzinfo=dt.UTC))
    if until is not None:
        entries = entries.filter(
            timestamp__lt=dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
        )
    return entries


def audit_row(entry: LogEntry) -> dict[str, Any]:
    """What the audit log shows of an entry: who, what, on what, before/after, the details."""
    details = dict(entry.additional_data or {})
    action = details.pop("action", "")
    return {
        "id": entry.pk,
        "timestamp": entry.timestamp,
        "actor": entry.actor.get_username() if entry.actor else None,
        "action": action,
        "action_label": Action(action).label if action in Action.values else action,
        "target_type": entry.content_type.model,
        "target_type_label": TARGET_TYPES.get(entry.content_type.model, entry.content_type.model),
        "target_id": entry.object_id,
        "target": entry.object_repr,
        "changes": {field: {"before": pair[0], "after": pair[1]} for field, pair in (entry.changes or {}).items()},
        "details": details,
    }


def tokens_of_user(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """The user's API tokens, newest first, revoked and expired ones included (they show when)."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def tokens_all(*, username: str = "") -> QuerySet[ApiToken]:
    """Everyone's API tokens with their owners, newest first; only ``username``'s if given."""
    tokens = ApiToken.objects.select_related("user", "revoked_by").order_by("-created_at", "-id")
    if username:
        tokens = tokens.filter(user__username=username)
    return tokens
