"""Middleware of the platform."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse


def api_not_found(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """A 404 under ``/api/`` is JSON in the API's shape, not the HTML page.

    Paths that match no route (``/api/campaigns/abc/``, an id beyond any database id) never reach
    DRF, so its exception handler cannot answer them; Django renders its HTML 404 page (or, with
    DEBUG on, the technical one). This replaces it on the way out, in both modes.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if (
            response.status_code == 404
            and request.path.startswith("/api/")
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return JsonResponse({"detail": "Not found."}, status=404)
        return response

    return middleware
