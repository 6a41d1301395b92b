"""API token authentication that also reads the user's roles, in one query."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef
from rest_framework import authentication, exceptions

from rlhf_platform.roles import Role, remember_role_groups


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication; the role check that follows on every request needs no query."""

    def authenticate_credentials(self, key: str):
        in_group = {role: Exists(Group.objects.filter(name=role, user=OuterRef("user_id"))) for role in Role}
        token = (
            self.get_model()
            .objects.select_related("user")
            .annotate(**{f"in_{role.value}": condition for role, condition in in_group.items()})
            .filter(key=key)
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        remember_role_groups(token.user, {role for role in Role if getattr(token, f"in_{role.value}")})
        return token.user, token
