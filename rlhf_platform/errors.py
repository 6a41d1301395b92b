"""Errors a user can cause, and how the API reports them.

Every error answer under ``/api/`` has one shape: ``{"detail": message, "errors": {field: message}}``,
``errors`` only where fields are at fault. Services raise a ``UserError`` subclass with a message
fit to show as it is and, where a field is at fault, field errors. DRF's own errors are brought
to the same shape here: a serializer's ``{field: [messages]}`` becomes ``errors`` with dotted
field names for nested input (``answers.0.choice``), and ``detail`` says what was wrong in one
line. Errors raised before DRF (no route, a body Django refused) are reshaped by
``rlhf_platform.middleware.api_errors_as_json``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler

from rlhf_platform.body_limits import too_large_body

# How many field errors the one-line ``detail`` of an invalid request names.
DETAIL_FIELDS_SHOWN = 3


class UserError(Exception):
    status_code = 400

    def __init__(self, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class PersonNotFound(UserError):
    status_code = 404

    def __init__(self) -> None:
        super().__init__("No such person.")


class TeamNotFound(UserError):
    status_code = 404

    def __init__(self) -> None:
        super().__init__("No such team.")


def field_errors(detail: Any, prefix: str = "") -> dict[str, str]:
    """A serializer's nested error detail as ``{dotted.field: "message. message"}``."""
    if isinstance(detail, dict):
        flat: dict[str, str] = {}
        for key, value in detail.items():
            flat |= field_errors(value, f"{prefix}.{key}" if prefix else str(key))
        return flat
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return {prefix: " ".join(detail)} if detail else {}
        flat = {}
        for index, item in enumerate(detail):
            flat |= field_errors(item, f"{prefix}.{index}" if prefix else str(index))
        return flat
    return {prefix: str(detail)}


def validation_error_body(detail: Any) -> dict[str, Any]:
    """``{"detail", "errors"}`` for a DRF ``ValidationError``'s detail."""
    errors = field_errors(detail if isinstance(detail, (dict, list)) else [detail])
    general = [errors.pop(key) for key in ("", api_settings.NON_FIELD_ERRORS_KEY) if key in errors]
    named = [f"{field}: {message}" for field, message in list(errors.items())[:DETAIL_FIELDS_SHOWN]]
    if len(errors) > DETAIL_FIELDS_SHOWN:
        named.append(f"({len(errors) - DETAIL_FIELDS_SHOWN} more in errors)")
    sentences = [text if text.endswith((".", "?", "!", ")")) else f"{text}." for text in general + named]
    body: dict[str, Any] = {"detail": " ".join(sentences) or "Invalid input."}
    if errors:
        body["errors"] = errors
    return body


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, UserError):
        body: dict[str, Any] = {"detail": exc.message}
        if exc.errors:
            body["errors"] = exc.errors
        return Response(body, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        # Django's own cap on a body it reads into memory: the same answer as the ASGI limit's.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(too_large_body(limit), status=413)
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return Response({"detail": f"The request carries too many form fields or files: {exc}"}, status=400)
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        response.data = validation_error_body(exc.detail)
    return response
