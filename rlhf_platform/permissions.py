"""Role checks for pages (decorators) and for the API (DRF permission classes)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from rest_framework.permissions import BasePermission

from rlhf_platform.models import ApiToken
from rlhf_platform.roles import user_is_manager, user_is_reviewer

View = Callable[..., HttpResponse]


def _role_required(check: Callable, role_name: str) -> Callable[[View], View]:
    """Anonymous users go to the login page; signed-in users without the role get a 403. The pages
    are someone's own work or the project's data: no browser or proxy may keep them (no-store)."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not check(request.user):
                raise PermissionDenied(f"This page is for {role_name}.")
            return view(request, *args, **kwargs)

        return never_cache(login_required(wrapped))

    return decorator


manager_required = _role_required(user_is_manager, "managers")
reviewer_required = _role_required(user_is_reviewer, "reviewers")


class IsManager(BasePermission):
    message = "Only managers may do this."

    def has_permission(self, request, view) -> bool:
        return user_is_manager(request.user)


class IsReviewer(BasePermission):
    message = "Only reviewers may do this."

    def has_permission(self, request, view) -> bool:
        return user_is_reviewer(request.user)


class SignedInWithPassword(BasePermission):
    """Signed in through a password (a browser session), not with an API token: making tokens
    needs it, or a leaked token could mint a successor that outlives its own revocation."""

    message = (
        "Tokens are made by a signed-in user, not with a token: use the API tokens page, "
        "or POST /api/auth/token/ with a username and password."
    )

    def has_permission(self, request, view) -> bool:
        return request.user.is_authenticated and not isinstance(request.auth, ApiToken)
