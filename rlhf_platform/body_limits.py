"""How large a request body may be, refused before it is read.

Under ASGI, Django reads a whole body into a temporary file before any view or middleware sees the
request: a client declaring (or sending) hundreds of megabytes to any URL, the anonymous token
endpoint included, fills the disk and holds a server process. ``SyncChainASGIHandler`` asks
``body_limit_for(path)`` first: a body whose ``Content-Length`` is over the limit is answered 413
without reading a byte, and a chunked body is counted as it arrives and cut off at the limit.
Imports take ``IMPORT_MAX_MB`` (and a little for the multipart envelope); everything else
``REQUEST_MAX_MB``.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

# The routes that upload task files.
IMPORT_ROUTES = frozenset({"labeling:campaign-import", "api-campaign-import"})
# Room for the multipart envelope and the other form fields around an import file.
MULTIPART_ALLOWANCE = 2**20


def body_limit_for(path: str) -> int:
    """The largest body, in bytes, a request to ``path`` may carry."""
    try:
        match = resolve(path)
    except Resolver404:
        return settings.REQUEST_BODY_MAX_BYTES
    if match.view_name in IMPORT_ROUTES:
        return settings.LABELING_IMPORT_MAX_BYTES + MULTIPART_ALLOWANCE
    return settings.REQUEST_BODY_MAX_BYTES


def too_large_body(limit: int) -> dict[str, object]:
    """What a 413 says, in the API's error shape."""
    message = f"The request body is larger than this endpoint accepts ({limit / 2**20:.0f} MB)."
    return {"detail": message, "errors": {"body": "Too large."}}


def too_large_response(path: str, limit: int) -> HttpResponse:
    """413, in the API's error shape for ``/api/`` paths."""
    body = too_large_body(limit)
    if path.startswith("/api/"):
        return JsonResponse(body, status=413)
    message = body["detail"]
    return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
