"""Writes that concern accounts and roles."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import transaction

from rlhf_platform.roles import Role

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
