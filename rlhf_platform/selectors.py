"""Reads shared by the project's own pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AbstractUser, Group
from django.db import DatabaseError, connection
from django.db.models import Count, Q, QuerySet

from rlhf_platform.audit import TARGET_TYPES, Action
from rlhf_platform.errors import PersonNotFound, TeamNotFound
from rlhf_platform.models import ApiToken
from rlhf_platform.roles import Role


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


# --- people and teams ----------------------------------------------------------------------------

PEOPLE_FILTERS = {
    "": "Everyone",
    "manager": "Managers",
    "reviewer": "Reviewers",
    "none": "No role",
    "inactive": "Deactivated",
}


def people_list(*, query: str = "", show: str = "") -> QuerySet[AbstractUser]:
    """People by username, their groups loaded; ``query`` matches username, name or email, ``show``
    is one of ``PEOPLE_FILTERS`` (roles among active people, or the deactivated)."""
    people = get_user_model().objects.order_by("username").prefetch_related("groups")
    # No user has a NUL character, and PostgreSQL refuses one in a query.
    query = query.replace("\x00", "")
    if query:
        people = people.filter(
            Q(username__icontains=query) | Q(first_name__icontains=query)
            | Q(last_name__icontains=query) | Q(email__icontains=query)
        )  # fmt: skip
    if show == "inactive":
        return people.filter(is_active=False)
    if show:
        people = people.filter(is_active=True)
    if show == "manager":
        people = people.filter(Q(is_superuser=True) | Q(groups__name=Role.MANAGER)).distinct()
    elif show == "reviewer":
        people = people.filter(groups__name=Role.REVIEWER).distinct()
    elif show == "none":
        people = people.filter(is_superuser=False).exclude(groups__name__in=list(Role))
    return people


def person_get(*, user_id: int) -> AbstractUser:
    """One person, their groups loaded, for ``person_row``; raises ``PersonNotFound``."""
    person = people_list().filter(pk=user_id).first()
    if person is None:
        raise PersonNotFound()
    return person


def person_row(user: AbstractUser) -> dict[str, Any]:
    """What the people pages show of someone (their groups prefetched): roles, teams, state."""
    names = {group.name for group in user.groups.all()}
    roles = [role.label() for role in Role if role in names]
    if user.is_superuser and Role.MANAGER.label() not in roles:
        roles.insert(0, Role.MANAGER.label())
    return {
        "user": user,
        "roles": roles,
        "role_values": [role.value for role in Role if role in names],
        "teams": sorted(name for name in names if name not in set(Role)),
        # Invited and not signed up yet: no password, so no way in but the link.
        "invited": not user.has_usable_password(),
    }


def teams_list() -> QuerySet[Group]:
    """Teams (auth groups other than the role groups) by name, with ``member_count``."""
    return Group.objects.exclude(name__in=list(Role)).annotate(member_count=Count("user")).order_by("name")


def team_get(*, team_id: int) -> Group:
    """One team, with ``member_count``; raises ``TeamNotFound`` (role groups are not teams)."""
    team = teams_list().filter(pk=team_id).first()
    if team is None:
        raise TeamNotFound()
    return team


def team_member_choices(*, team: Group) -> list[dict[str, Any]]:
    """Every active person, and deactivated members, each marked whether they are in ``team``."""
    members = set(team.user_set.values_list("pk", flat=True))
    people = get_user_model().objects.filter(Q(is_active=True) | Q(pk__in=members)).order_by("username")
    return [
        {"username": user.get_username(), "full_name": user.get_full_name(), "active": user.is_active,
         "in_team": user.pk in members}
        for user in people
    ]  # fmt: skip
