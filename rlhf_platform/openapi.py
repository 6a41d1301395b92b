"""OpenAPI schema generation tweaks."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorSerializer(serializers.Serializer):
    """Every error answer of the API (rlhf_platform/errors.py)."""

    detail = serializers.CharField(help_text="What went wrong, in one line fit to show.")
    errors = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text="Per field at fault (dotted for nested input, `line N` for an import row), its message.",
    )


class AutoSchema(SpectacularAutoSchema):
    """Names nested serializers after their view, and documents the error answers of every operation.

    API views declare their serializers inside the view class (one view per operation),
    so many are called ``InputSerializer``; ``SubmitApi.InputSerializer`` becomes the
    component ``SubmitInput`` instead of clashing with every other ``Input``.

    Every operation can answer some errors whatever it does: 400 and 413 where it takes a body,
    401 and 403 where it needs a user, 404 where its path names an object. They are added, in
    the one error shape, wherever a view does not describe them itself.
    """

    def _get_response_bodies(self, direction: str = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        for code, description in self._error_answers():
            if code not in responses:
                answer = OpenApiResponse(ErrorSerializer, description=description)
                responses[code] = self._get_response_for_code(answer, code, direction=direction)
        return responses

    def _error_answers(self) -> list[tuple[str, str]]:
        answers = []
        if self.method in ("POST", "PUT", "PATCH"):
            answers += [
                ("400", "Invalid input: `detail` says what, `errors` names the fields at fault."),
                ("413", "The body is larger than this endpoint accepts."),
            ]
        if not any(permission is AllowAny for permission in self.view.permission_classes):
            answers += [("401", "No credentials, or bad ones."), ("403", "Not allowed to this user.")]
        if "{" in self.path:
            answers.append(("404", "No such object (or not visible to this user)."))
        return answers

    def _get_serializer_name(self, serializer, direction, bypass_extensions=False) -> str:
        name = super()._get_serializer_name(serializer, direction, bypass_extensions)
        if isinstance(serializer, serializers.ListSerializer):
            serializer = serializer.child
        owner, _, _ = type(serializer).__qualname__.rpartition(".")
        if owner:
            name = owner.rpartition(".")[2].removesuffix("Api") + name
        return name
