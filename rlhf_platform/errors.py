"""Errors a user can cause, and how the API reports them.

Services raise a ``UserError`` subclass with a message fit to show as it is and,
where a field is at fault, field errors. The API turns it into a 4xx response:
``{"detail": message, "errors": {field: message}}``.
"""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler


class UserError(Exception):
    status_code = 400

    def __init__(self, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, UserError):
        body: dict[str, Any] = {"detail": exc.message}
        if exc.errors:
            body["errors"] = exc.errors
        return Response(body, status=exc.status_code)
    return exception_handler(exc, context)
