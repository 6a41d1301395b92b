from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rlhf_platform.roles import user_roles


class CurrentUserApi(APIView):
    """Who the caller is, and which roles they hold."""

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        roles = serializers.ListField(child=serializers.ChoiceField(choices=["reviewers", "managers"]))

    @extend_schema(responses=OutputSerializer, operation_id="me_retrieve", tags=["accounts"])
    def get(self, request: Request) -> Response:
        user = request.user
        data = {"id": user.pk, "username": user.get_username(), "roles": [str(r) for r in user_roles(user)]}
        return Response(self.OutputSerializer(data).data)
