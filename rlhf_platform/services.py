"""Writes that concern accounts, roles, teams and API tokens."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AbstractUser, Group
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from rlhf_platform.audit import Action, audit_record
from rlhf_platform.errors import PersonNotFound, TeamNotFound, UserError
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


# --- people: invitations, roles, deactivation ----------------------------------------------------
# Managers add people without an email server: an invitation makes the account without a password
# and returns a one-time link to set one, which the manager passes on. The link carries Django's
# password-reset token: it expires after PASSWORD_RESET_TIMEOUT (PASSWORD_LINK_HOURS) and works
# once, because the token is made from the password hash and the last sign-in, which setting the
# password changes. Deactivating someone also voids their links (``is_active`` is part of it).


class SetPasswordTokenGenerator(PasswordResetTokenGenerator):
    # Its own salt: a set-password link is not a password-reset link of some other feature.
    key_salt = "rlhf_platform.services.SetPasswordTokenGenerator"

    def _make_hash_value(self, user: AbstractBaseUser, timestamp: int) -> str:
        return f"{super()._make_hash_value(user, timestamp)}{int(user.is_active)}"


set_password_tokens = SetPasswordTokenGenerator()


@dataclass(frozen=True)
class SetPasswordLink:
    user: AbstractUser
    # Path of the set-password page with its token; the page or command makes it absolute.
    path: str
    expires_at: datetime


def set_password_link(user: AbstractUser) -> SetPasswordLink:
    """A fresh link for ``user``: every earlier one stays valid until it expires or a password is set."""
    path = reverse(
        "set-password",
        kwargs={"uidb64": urlsafe_base64_encode(force_bytes(user.pk)), "token": set_password_tokens.make_token(user)},
    )
    return SetPasswordLink(
        user=user, path=path, expires_at=timezone.now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT)
    )


def _roles_from(values: Iterable[str]) -> list[Role]:
    """Roles by their label (``manager``, what people type) or their group name (``managers``)."""
    by_name = {role.label(): role for role in Role} | {role.value: role for role in Role}
    roles = set()
    for value in values:
        if value not in by_name:
            raise UserError(f"Unknown role {value!r}.", {"roles": f"Choose from {', '.join(r.label() for r in Role)}."})
        roles.add(by_name[value])
    return sorted(roles)


def _check_new_person(*, username: str, email: str, roles: list[Role]) -> tuple[str, str]:
    user_model = get_user_model()
    username, email = username.strip(), email.strip()
    errors = {}
    if not username:
        errors["username"] = "Give a username."
    elif "\x00" in username:
        errors["username"] = "A username cannot contain a NUL character."
    else:
        try:
            user_model.username_validator(username)
            if len(username) > user_model._meta.get_field("username").max_length:
                raise ValidationError("At most 150 characters.")
        except ValidationError as error:
            errors["username"] = " ".join(error.messages)
    if "username" not in errors and user_model.objects.filter(username__iexact=username).exists():
        errors["username"] = f"{username!r} is taken."
    if email:
        try:
            validate_email(email)
        except ValidationError:
            errors["email"] = "Enter a valid email address, or leave it empty."
    if not roles:
        errors["roles"] = "Give the person a role: reviewer, manager or both."
    if errors:
        raise UserError("The person was not added.", errors)
    return username, email


def _add_roles(user: AbstractUser, roles: list[Role]) -> None:
    user.groups.add(*(Group.objects.get_or_create(name=role)[0] for role in roles))


@transaction.atomic
def user_invite(
    *, username: str, roles: Iterable[str], email: str = "", actor: AbstractBaseUser | None
) -> SetPasswordLink:
    """Create an account without a usable password, with its roles, and return its set-password link."""
    role_list = _roles_from(roles)
    username, email = _check_new_person(username=username, email=email, roles=role_list)
    user = get_user_model().objects.create_user(username=username, email=email, password=None)
    _add_roles(user, role_list)
    link = set_password_link(user)
    audit_record(
        actor=actor, action=Action.USER_INVITE, target=user, roles=[r.label() for r in role_list],
        expires_at=link.expires_at.isoformat(),
    )  # fmt: skip
    return link


@transaction.atomic
def user_create(
    *, username: str, roles: Iterable[str], password: str, email: str = "", actor: AbstractBaseUser | None
) -> AbstractUser:
    """Create an account with a password (checked by AUTH_PASSWORD_VALIDATORS), for scripts."""
    role_list = _roles_from(roles)
    username, email = _check_new_person(username=username, email=email, roles=role_list)
    user_model = get_user_model()
    try:
        validate_password(password, user_model(username=username, email=email))
    except ValidationError as error:
        raise UserError("The password was refused.", {"password": " ".join(error.messages)}) from None
    user = user_model.objects.create_user(username=username, email=email, password=password)
    _add_roles(user, role_list)
    audit_record(actor=actor, action=Action.USER_CREATE, target=user, roles=[r.label() for r in role_list])
    return user


def _person_locked(user_id: int, actor: AbstractBaseUser | None) -> AbstractUser:
    user = get_user_model().objects.select_for_update().filter(pk=user_id).first()
    if user is None:
        raise PersonNotFound()
    if user.is_superuser and not (actor is None or actor.is_superuser):
        raise UserError(
            f"{user.get_username()} is a superuser: change them in the admin or with manage.py, as a superuser."
        )
    return user


def _active_managers_besides(user: AbstractBaseUser) -> int:
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name=Role.MANAGER))
        .exclude(pk=user.pk)
        .distinct()
        .count()
    )


@transaction.atomic
def user_password_link(*, user_id: int, actor: AbstractBaseUser | None) -> SetPasswordLink:
    """A new set-password link for someone who lost theirs or forgot their password (their current
    password keeps working until they set a new one)."""
    user = _person_locked(user_id, actor)
    if not user.is_active:
        raise UserError(f"{user.get_username()} is deactivated: activate them first.")
    link = set_password_link(user)
    audit_record(actor=actor, action=Action.USER_PASSWORD_LINK, target=user, expires_at=link.expires_at.isoformat())
    return link


@transaction.atomic
def user_password_set_by_link(*, user: AbstractUser, password: str) -> AbstractUser:
    """Set the password of the link's owner (the page checked the token and the validators): the
    link, and every other link issued before, stops working."""
    user = get_user_model().objects.select_for_update().get(pk=user.pk)
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise UserError("The password was refused.", {"new_password1": " ".join(error.messages)}) from None
    user.set_password(password)
    user.save(update_fields=["password"])
    audit_record(actor=user, action=Action.USER_PASSWORD_SET, target=user)
    return user


@transaction.atomic
def user_set_roles(*, user_id: int, roles: Iterable[str], actor: AbstractBaseUser | None) -> AbstractUser:
    """Replace a person's roles. Nobody takes their own manager role away, and the last manager stays one:
    either would leave nobody able to undo it from the pages."""
    role_list = _roles_from(roles)
    user = _person_locked(user_id, actor)
    before = sorted(user.groups.filter(name__in=list(Role)).values_list("name", flat=True))
    after = sorted(role.value for role in role_list)
    if Role.MANAGER in before and Role.MANAGER not in after and not user.is_superuser:
        if actor is not None and actor.pk == user.pk:
            raise UserError("You cannot take your own manager role away.", {"roles": "Ask another manager."})
        if not _active_managers_besides(user):
            raise UserError(
                f"{user.get_username()} is the last manager.", {"roles": "Make someone else a manager first."}
            )
    if before == after:
        return user
    user.groups.remove(*Group.objects.filter(name__in=sorted(set(before) - set(after))))
    _add_roles(user, [Role(name) for name in sorted(set(after) - set(before))])
    audit_record(
        actor=actor, action=Action.USER_ROLES, target=user,
        changes={"roles": ([Role(n).label() for n in before], [Role(n).label() for n in after])},
    )  # fmt: skip
    return user


@transaction.atomic
def user_set_active(*, user_id: int, active: bool, actor: AbstractBaseUser | None) -> AbstractUser:
    """Deactivate or reactivate a person. A deactivated person cannot sign in, their sessions and API
    tokens stop working and their set-password links are void; their judgements stay."""
    user = _person_locked(user_id, actor)
    if user.is_active == active:
        return user
    if not active:
        if actor is not None and actor.pk == user.pk:
            raise UserError("You cannot deactivate yourself.", {"active": "Ask another manager."})
        if (user.is_superuser or user.groups.filter(name=Role.MANAGER).exists()) and not _active_managers_besides(user):
            raise UserError(
                f"{user.get_username()} is the last manager.", {"active": "Make someone else a manager first."}
            )
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit_record(actor=actor, action=Action.USER_ACTIVE, target=user, changes={"is_active": (not active, active)})
    return user


# --- teams: auth groups other than the role groups ----------------------------------------------


def _team_locked(team_id: int) -> Group:
    team = Group.objects.select_for_update().exclude(name__in=list(Role)).filter(pk=team_id).first()
    if team is None:
        raise TeamNotFound()
    return team


@transaction.atomic
def team_create(*, name: str, actor: AbstractBaseUser | None) -> Group:
    """A new, empty team of people (an auth group); its name is unique, case aside."""
    name = " ".join(name.split())
    max_length = Group._meta.get_field("name").max_length
    if not name:
        raise UserError("The team was not created.", {"name": "Give the team a name."})
    if "\x00" in name or len(name) > max_length:
        raise UserError("The team was not created.", {"name": f"At most {max_length} characters, no NUL."})
    if name.lower() in {role.value for role in Role} | {role.label() for role in Role}:
        raise UserError("The team was not created.", {"name": "That is the name of a role; choose another."})
    if Group.objects.filter(name__iexact=name).exists():
        raise UserError("The team was not created.", {"name": f"A team named {name!r} exists."})
    team = Group.objects.create(name=name)
    audit_record(actor=actor, action=Action.TEAM_CREATE, target=team)
    return team


@transaction.atomic
def team_set_members(*, team_id: int, usernames: Iterable[str], actor: AbstractBaseUser | None) -> list[str]:
    """Replace a team's members (any people, active or not; a campaign takes only its active reviewers)."""
    team = _team_locked(team_id)
    wanted = sorted({u.strip() for u in usernames if u and u.strip()})
    if any("\x00" in username for username in wanted):
        raise UserError("A username cannot contain a NUL character.", {"members": "No NUL characters."})
    users = list(get_user_model().objects.filter(username__in=wanted))
    missing = sorted(set(wanted) - {u.get_username() for u in users})
    if missing:
        raise UserError(f"No such people: {', '.join(missing)}.", {"members": f"Unknown: {', '.join(missing)}"})
    before = sorted(team.user_set.values_list("username", flat=True))
    if before != wanted:
        team.user_set.set(users)
        audit_record(actor=actor, action=Action.TEAM_MEMBERS, target=team, changes={"members": (before, wanted)})
    return wanted


@transaction.atomic
def team_delete(*, team_id: int, actor: AbstractBaseUser | None) -> str:
    """Delete a team; its people and the campaign pools it was added to stay as they are."""
    team = _team_locked(team_id)
    name = team.name
    audit_record(actor=actor, action=Action.TEAM_DELETE, target=team, members=team.user_set.count())
    team.delete()
    return name
