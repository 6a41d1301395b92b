"""Writes that concern accounts, roles and API tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AbstractUser, Group
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from rlhf_platform.audit import Action, audit_record
from rlhf_platform.errors import UserError
from rlhf_platform.models import ApiToken, ApiTokenStatus, token_digest
from rlhf_platform.roles import Role, user_is_manager

DEMO_USERS: tuple[tuple[str, Role], ...] = (
    ("manager", Role.MANAGER),
    ("reviewer1", Role.REVIEWER),
    ("reviewer2", Role.REVIEWER),
)


@dataclass(frozen=True)
class DemoUserOutcome:
    username: str
    role: Role
    created: bool
    # A password this call generated, to be shown once; None when it came from the caller or was kept.
    generated_password: str | None
    password_changed: bool


@transaction.atomic
def user_create_with_role(*, username: str, password: str, role: Role) -> AbstractUser:
    user = get_user_model().objects.create_user(username=username, password=password)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@transaction.atomic
def demo_users_ensure(*, passwords: dict[Role, str | None]) -> list[DemoUserOutcome]:
    """Create the demo manager and reviewers if missing.

    A password given for a role is applied, to new and existing users alike. Without
    one, a new user gets a random password (returned, to be shown once) and an
    existing user keeps theirs. Passwords are never read back.
    """
    user_model = get_user_model()
    outcomes = []
    for username, role in DEMO_USERS:
        given = passwords.get(role)
        user = user_model.objects.filter(username=username).first()
        if user is None:
            generated = None if given else secrets.token_urlsafe(12)
            user_create_with_role(username=username, password=given or generated, role=role)
            outcomes.append(
                DemoUserOutcome(username, role, created=True, generated_password=generated, password_changed=True)
            )
            continue
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        if given:
            user.set_password(given)
            user.save(update_fields=["password"])
        outcomes.append(
            DemoUserOutcome(username, role, created=False, generated_password=None, password_changed=bool(given))
        )
    return outcomes


# --- API tokens ---------------------------------------------------------------------------------
# The one place tokens are created, revoked and rotated (the pages, the API and the benchmark's
# setup all come here), so that an audit log can hook in here.


class TokenNotActive(UserError):
    # The request is fine; the token's state (revoked or expired) is what stands in the way.
    status_code = 409


class TokenNotFound(UserError):
    # Someone else's token answers as a missing one: its existence is none of the caller's business.
    status_code = 404

    def __init__(self) -> None:
        super().__init__("No such token.")


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    # The key itself: shown to its owner once, never stored.
    key: str


def _token_check_fields(*, name: str, expires_at: datetime | None, now: datetime) -> str:
    name = name.strip()
    errors = {}
    if not name:
        errors["name"] = "Give the token a name, e.g. where it is used."
    elif len(name) > ApiToken.NAME_MAX_LENGTH:
        errors["name"] = f"At most {ApiToken.NAME_MAX_LENGTH} characters."
    if expires_at is not None and expires_at <= now:
        errors["expires_at"] = "The expiry must be in the future."
    if errors:
        raise UserError("The token was not created.", errors)
    return name


@transaction.atomic
def token_create(*, user: AbstractBaseUser, name: str, expires_at: datetime | None) -> CreatedToken:
    """Issue a new API token for ``user``; the key is returned once and only its digest is kept."""
    now = timezone.now()
    name = _token_check_fields(name=name, expires_at=expires_at, now=now)
    # 256 random bits; URL-safe, so the key can travel in a header or a shell variable unquoted.
    key = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        digest=token_digest(key),
        prefix=key[: ApiToken.PREFIX_LENGTH],
        created_at=now,
        expires_at=expires_at,
    )
    audit_record(
        actor=user,
        action=Action.TOKEN_CREATE,
        target=token,
        owner=user.get_username(),
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return CreatedToken(token=token, key=key)


def _token_locked_for(*, token_id: int, actor: AbstractBaseUser, managers_too: bool) -> ApiToken:
    token = ApiToken.objects.select_for_update().select_related("user").filter(pk=token_id).first()
    if token is None or not (token.user_id == actor.pk or (managers_too and user_is_manager(actor))):
        raise TokenNotFound()
    return token


@transaction.atomic
def token_revoke(*, token_id: int, actor: AbstractBaseUser) -> ApiToken:
    """Revoke a token: its owner may, and so may any manager. Revoking twice keeps the first time.

    The row is locked so that a concurrent rotation cannot issue a successor to a token revoked
    at the same moment.
    """
    token = _token_locked_for(token_id=token_id, actor=actor, managers_too=True)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.revoked_by = actor
        token.save(update_fields=["revoked_at", "revoked_by"])
        audit_record(actor=actor, action=Action.TOKEN_REVOKE, target=token, owner=token.user.get_username())
    return token


@transaction.atomic
def token_rotate(*, token_id: int, actor: AbstractBaseUser) -> CreatedToken:
    """Replace a token by a new key with the same name and lifetime, revoking the old one at once.

    Only the owner may: rotating shows the new key, and managers may stop tokens but never read
    one. Locked like ``token_revoke``, so a token is rotated at most once.
    """
    token = _token_locked_for(token_id=token_id, actor=actor, managers_too=False)
    now = timezone.now()
    if token.status(now) != ApiTokenStatus.ACTIVE:
        raise TokenNotActive(f"This token is {token.status(now)}; create a new one instead.")
    lifetime = token.expires_at - token.created_at if token.expires_at is not None else None
    token.revoked_at = now
    token.revoked_by = actor
    token.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(actor=actor, action=Action.TOKEN_REVOKE, target=token, owner=token.user.get_username(), rotated=True)
    return token_create(user=token.user, name=token.name, expires_at=lifetime and now + lifetime)


def token_default_expiry(*, now: datetime | None = None) -> datetime | None:
    """When a token issued without an explicit expiry expires (API_TOKEN_DEFAULT_DAYS; 0: never)."""
    days = settings.API_TOKEN_DEFAULT_DAYS
    return (now or timezone.now()) + timedelta(days=days) if days else None


def token_mark_used(*, token_id: int, now: datetime) -> None:
    """Record that a token was used. Authentication calls it at most once per
    API_TOKEN_LAST_USED_INTERVAL_S per token; the condition keeps concurrent requests that all
    saw a stale time from writing it again."""
    stale_before = now - timedelta(seconds=settings.API_TOKEN_LAST_USED_INTERVAL_S)
    ApiToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale_before), pk=token_id).update(
        last_used_at=now
    )
