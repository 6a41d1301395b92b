"""OpenAPI schema generation tweaks."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers


class AutoSchema(SpectacularAutoSchema):
    """Names nested ``InputSerializer``/``OutputSerializer`` classes after their view.

    API views declare their serializers inside the view class (one view per operation),
    so many are called ``InputSerializer``; ``SubmitApi.InputSerializer`` becomes the
    component ``SubmitInput`` instead of clashing with every other ``Input``.
    """

    def _get_serializer_name(self, serializer, direction, bypass_extensions=False) -> str:
        name = super()._get_serializer_name(serializer, direction, bypass_extensions)
        if isinstance(serializer, serializers.ListSerializer):
            serializer = serializer.child
        owner, _, _ = type(serializer).__qualname__.rpartition(".")
        if owner:
            name = owner.rpartition(".")[2].removesuffix("Api") + name
        return name
