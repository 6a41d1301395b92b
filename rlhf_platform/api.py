from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rlhf_platform.json_limits import JSONParser
from rlhf_platform.roles import user_roles


class TokenApi(ObtainAuthToken):
    """DRF's token view (username and password in, token out), with the platform's JSON parser:
    DRF's own view names its parsers itself and would answer deeply nested JSON with a 500."""

    parser_classes = (
        JSONParser,
        *(parser for parser in ObtainAuthToken.parser_classes if parser.media_type != "application/json"),
    )


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
