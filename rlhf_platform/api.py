from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rlhf_platform.audit import TARGET_TYPES, Action
from rlhf_platform.errors import UserError
from rlhf_platform.forms import AuditFilterForm
from rlhf_platform.json_limits import JSONParser
from rlhf_platform.pagination import NewestFirstCursorPagination, paginated_response
from rlhf_platform.permissions import IsManager
from rlhf_platform.roles import user_roles
from rlhf_platform.selectors import audit_entries, audit_row


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


class AuditLogApi(APIView):
    """Managers' actions, newest first (cursor pages), filtered like the audit log page."""

    permission_classes = [IsManager]
    pagination_class = NewestFirstCursorPagination

    class EntrySerializer(serializers.Serializer):
        id = serializers.IntegerField()
        timestamp = serializers.DateTimeField()
        actor = serializers.CharField(allow_null=True, help_text="Username; null for the system (the worker).")
        action = serializers.CharField(help_text=f"One of: {', '.join(Action.values)}.")
        action_label = serializers.CharField()
        target_type = serializers.CharField(help_text=f"One of: {', '.join(TARGET_TYPES)}.")
        target_id = serializers.IntegerField(allow_null=True)
        target = serializers.CharField(help_text="The object as it read then.")
        changes = serializers.DictField(help_text="Per changed field, {before, after}.")
        details = serializers.DictField()

    @extend_schema(
        parameters=[
            OpenApiParameter("actor", str, description="A username, or `system`."),
            OpenApiParameter("action", str, enum=Action.values),
            OpenApiParameter("target_type", str, enum=list(TARGET_TYPES)),
            OpenApiParameter("target_id", int),
            OpenApiParameter("since", OpenApiTypes.DATE, description="From this day (UTC), included."),
            OpenApiParameter("until", OpenApiTypes.DATE, description="To this day (UTC), included."),
        ],
        responses=EntrySerializer(many=True),
        tags=["audit"],
    )
    def get(self, request: Request) -> Response:
        form = AuditFilterForm(request.query_params)
        if not form.is_valid():
            raise UserError(
                "Some filters need fixing.", {field: " ".join(errors) for field, errors in form.errors.items()}
            )
        return paginated_response(
            view=self,
            request=request,
            items=audit_entries(**form.cleaned_data),
            serialize=lambda page: self.EntrySerializer([audit_row(entry) for entry in page], many=True).data,
        )
