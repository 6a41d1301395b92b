"""Role checks for pages (decorators) and for the API (DRF permission classes)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from rest_framework.permissions import BasePermission

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
