"""The two roles of the platform, stored as Django auth groups.

Reviewers judge model outputs; managers run campaigns and training. Superusers
count as managers. A user may hold both roles; pages that differ by role treat a
manager as a manager.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class Role(StrEnum):
    """The value is the name of the auth group that grants the role."""

    REVIEWER = "reviewers"
    MANAGER = "managers"

    def label(self) -> str:
        return self.value.removesuffix("s")


def _group_names(user: AbstractBaseUser) -> frozenset[str]:
    # Cached on the user object: a page asks about roles several times per request.
    cached = getattr(user, "_role_group_names", None)
    if cached is None:
        cached = remember_group_names(user, user.groups.values_list("name", flat=True))
    return cached


def remember_group_names(user: AbstractBaseUser, names: Iterable[str]) -> frozenset[str]:
    """Cache the user's group names on the user, for code that read them along with the user."""
    user._role_group_names = frozenset(names)
    return user._role_group_names


def user_is_manager(user: AbstractBaseUser | AnonymousUser) -> bool:
    if not (user.is_authenticated and user.is_active):
        return False
    return user.is_superuser or Role.MANAGER in _group_names(user)


def user_is_reviewer(user: AbstractBaseUser | AnonymousUser) -> bool:
    if not (user.is_authenticated and user.is_active):
        return False
    return Role.REVIEWER in _group_names(user)


def user_roles(user: AbstractBaseUser | AnonymousUser) -> list[Role]:
    roles = []
    if user_is_manager(user):
        roles.append(Role.MANAGER)
    if user_is_reviewer(user):
        roles.append(Role.REVIEWER)
    return roles


# The roles as people name them (``manager``, ``reviewer``): the people API and `create_user` take these.
ROLE_LABELS = [role.label() for role in Role]
