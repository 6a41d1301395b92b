"""What a locked-out sign-in gets back (django-axes decides who is locked out; settings.py).

A locked-out try restarts the cool-off (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT), so the
wait left after any refused try is the whole cool-off: that is the ``Retry-After``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from rest_framework.exceptions import Throttled


def lockout_retry_after_s() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_message() -> str:
    minutes = max(1, lockout_retry_after_s() // 60)
    return f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}."


class SignInLockedOut(Throttled):
    """The API's answer: 429 with ``{"detail": ...}`` and ``Retry-After`` (DRF adds the header)."""

    def __init__(self) -> None:
        super().__init__(wait=lockout_retry_after_s(), detail=lockout_message())
        # DRF's Throttled appends its own "Expected available in N seconds." to the detail.
        self.detail = lockout_message()


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' AXES_LOCKOUT_CALLABLE: the login page with the message, or JSON under /api/.

    The other arguments are unused: axes passes them in a different order under ASGI.
    """
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"detail": lockout_message()}, status=429)
    else:
        response = TemplateResponse(
            request,
            "registration/login.html",
            {
                "form": AuthenticationForm(request, initial={"username": request.POST.get("username", "")}),
                "next": request.POST.get("next", ""),
                "lockout_message": lockout_message(),
            },
            status=429,
        )
        response.render()
    response["Retry-After"] = str(lockout_retry_after_s())
    return response


def client_address(request: HttpRequest) -> str | None:
    """The address sign-in failures are counted against (``AXES_CLIENT_IP_CALLABLE``).

    Without proxies it is the connection's. Behind ``TRUSTED_PROXY_COUNT`` proxies, each of which
    appends the address it saw to X-Forwarded-For, the client is the entry that many places from
    the right: the entries left of it are whatever the client chose to send, never trusted.
    """
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if hops and len(forwarded) >= hops:
        return forwarded[-hops]
    return request.META.get("REMOTE_ADDR")
