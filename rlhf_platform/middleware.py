"""Middleware of the platform."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, JsonResponse

# What an error answer under /api/ says when it did not come from the API's own views (which
# answer in the API's shape themselves): Django refused the request before any view ran.
API_ERROR_DETAILS = {
    400: "Bad request: the request could not be read.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    500: "Server error. It has been logged.",
}


def _phrase(status: int) -> str:
    try:
        return f"{HTTPStatus(status).phrase}."
    except ValueError:
        return "Error."


def api_errors_as_json(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Every error answer under ``/api/`` is JSON in the API's shape, not an HTML page.

    Paths that match no route (``/api/campaigns/abc/``, an id beyond any database id) never reach
    DRF, so its exception handler cannot answer them; nor can it answer a request Django refused
    while reading it (too many form fields, a malformed body) or a server error. Django renders
    its HTML pages for those (or, with DEBUG on, the technical ones; the traceback is logged
    either way); this replaces them on the way out, in both modes.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if (
            response.status_code >= 400
            and request.path.startswith("/api/")
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            status = response.status_code
            return JsonResponse({"detail": API_ERROR_DETAILS.get(status) or _phrase(status)}, status=status)
        return response

    return middleware
