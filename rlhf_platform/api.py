from django.contrib.auth import user_logged_in
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rlhf_platform import selectors, services
from rlhf_platform.audit import TARGET_TYPES, Action
from rlhf_platform.errors import UserError
from rlhf_platform.forms import AuditFilterForm
from rlhf_platform.lockout import SignInLockedOut
from rlhf_platform.models import ApiToken, ApiTokenStatus
from rlhf_platform.openapi import ErrorSerializer
from rlhf_platform.pagination import NewestFirstCursorPagination, PagePagination, paginated_response
from rlhf_platform.permissions import IsManager, SignedInWithPassword
from rlhf_platform.roles import ROLE_LABELS, user_is_manager, user_roles

ERRORS = {400: ErrorSerializer, 404: ErrorSerializer}


class ApiTokenSerializer(serializers.ModelSerializer):
    """A token as listed: never its key, only its first characters to recognise it by."""

    username = serializers.CharField(source="user.username", read_only=True)
    status = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "username",
            "prefix",
            "status",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=ApiTokenStatus.choices))
    def get_status(self, token: ApiToken) -> str:
        return token.status()


class NewApiTokenSerializer(ApiTokenSerializer):
    """A token just issued, with its key: shown this once, never again."""

    token = serializers.CharField(help_text="The key, sent as `Authorization: Token <key>`; shown only this once.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


def _new_token_data(created: services.CreatedToken) -> dict:
    return {**ApiTokenSerializer(created.token).data, "token": created.key}


class TokenApi(APIView):
    """Username and password in, a new API token out, for scripts (the platform's JSON parser and
    DRF's form parsers). Each call issues a new token, named after the caller's choice, that expires
    after API_TOKEN_DEFAULT_DAYS; failed passwords count towards the sign-in lockout."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    class InputSerializer(AuthTokenSerializer):
        name = serializers.CharField(
            required=False, default="Obtained with a password", help_text="What the token is for."
        )

    @extend_schema(
        request=InputSerializer,
        responses={200: NewApiTokenSerializer, 400: ErrorSerializer, 429: ErrorSerializer},
        operation_id="auth_token_create",
        tags=["accounts"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data, context={"request": request})
        if not data.is_valid():
            # django-axes marked the request while checking the password (rlhf_platform/lockout.py).
            if getattr(request, "axes_locked_out", False):
                raise SignInLockedOut()
            raise serializers.ValidationError(data.errors)
        user = data.validated_data["user"]
        created = services.token_create(
            user=user, name=data.validated_data["name"], expires_at=services.token_default_expiry()
        )
        # A password exchanged for a token is a sign-in: axes resets the user's failure count on it.
        user_logged_in.send(sender=type(user), request=request, user=user)
        return Response(_new_token_data(created))


class TokenListCreateApi(generics.ListAPIView):
    serializer_class = ApiTokenSerializer
    pagination_class = NewestFirstCursorPagination

    class CreateSerializer(serializers.Serializer):
        name = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)
        expires_at = serializers.DateTimeField(
            required=False,
            allow_null=True,
            help_text="When the token stops working. Left out: API_TOKEN_DEFAULT_DAYS from now; null: never.",
        )

    def get_queryset(self):
        request = self.request
        if request.query_params.get("all", "").lower() in ("1", "true", "yes"):
            if not user_is_manager(request.user):
                self.permission_denied(request, message=IsManager.message)
            return selectors.tokens_all(username=request.query_params.get("username", ""))
        return selectors.tokens_of_user(user=request.user).select_related("user")

    @extend_schema(
        parameters=[
            OpenApiParameter("all", bool, description="Managers: everyone's tokens instead of one's own."),
            OpenApiParameter("username", str, description="With all: only this user's tokens."),
        ],
        description="One's own API tokens, newest first, revoked and expired ones included (never their keys).",
        tags=["accounts"],
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=CreateSerializer,
        responses={201: NewApiTokenSerializer, **ERRORS},
        description="A new token for the caller, who must be signed in with a password (a session), not a token.",
        tags=["accounts"],
    )
    def post(self, request: Request) -> Response:
        if not SignedInWithPassword().has_permission(request, self):
            self.permission_denied(request, message=SignedInWithPassword.message)
        data = self.CreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        expires_at = fields["expires_at"] if "expires_at" in fields else services.token_default_expiry()
        created = services.token_create(user=request.user, name=fields["name"], expires_at=expires_at)
        return Response(_new_token_data(created), status=status.HTTP_201_CREATED)


class TokenRevokeApi(APIView):
    @extend_schema(
        request=None,
        responses={200: ApiTokenSerializer, **ERRORS},
        description="Stop a token at once. One's own, or anyone's for managers.",
        tags=["accounts"],
    )
    def post(self, request: Request, token_id: int) -> Response:
        token = services.token_revoke(token_id=token_id, actor=request.user)
        return Response(ApiTokenSerializer(token).data)


class TokenRotateApi(APIView):
    permission_classes = [SignedInWithPassword]

    @extend_schema(
        request=None,
        responses={201: NewApiTokenSerializer, 409: ErrorSerializer, **ERRORS},
        description="Replace one's own token by a new key with the same name and lifetime; the old key stops. "
        "Signed in with a password (a session), not a token.",
        tags=["accounts"],
    )
    def post(self, request: Request, token_id: int) -> Response:
        created = services.token_rotate(token_id=token_id, actor=request.user)
        return Response(_new_token_data(created), status=status.HTTP_201_CREATED)


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
            items=selectors.audit_entries(**form.cleaned_data),
            serialize=lambda page: self.EntrySerializer([selectors.audit_row(entry) for entry in page], many=True).data,
        )


# --- people and teams (managers) ----------------------------------------------------------------


class PersonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()
    full_name = serializers.CharField()
    roles = serializers.ListField(child=serializers.ChoiceField(choices=ROLE_LABELS), help_text="Superusers: manager.")
    teams = serializers.ListField(child=serializers.CharField())
    is_active = serializers.BooleanField()
    is_superuser = serializers.BooleanField()
    invited = serializers.BooleanField(help_text="Invited and no password set yet.")
    last_login = serializers.DateTimeField(allow_null=True)
    date_joined = serializers.DateTimeField()


def _person_data(user) -> dict:
    row = selectors.person_row(user)
    return {
        "id": user.pk,
        "username": user.get_username(),
        "email": user.email,
        "full_name": user.get_full_name(),
        "roles": row["roles"],
        "teams": row["teams"],
        "is_active": user.is_active,
        "is_superuser": user.is_superuser,
        "invited": row["invited"],
        "last_login": user.last_login,
        "date_joined": user.date_joined,
    }


class SetPasswordLinkSerializer(serializers.Serializer):
    person = PersonSerializer()
    set_password_url = serializers.CharField(help_text="The one-time link; shown only in this answer.")
    expires_at = serializers.DateTimeField()


def _link_data(request: Request, link: services.SetPasswordLink) -> dict:
    person = selectors.person_get(user_id=link.user.pk)
    return {
        "person": _person_data(person),
        "set_password_url": request.build_absolute_uri(link.path),
        "expires_at": link.expires_at,
    }


INVITES_NEED_A_SESSION = (
    "Invitations and set-password links are made by a manager signed in with a password (a session), not with "
    "a token: a leaked token must not mint accounts that outlive its revocation."
)


class PeopleApi(APIView):
    permission_classes = [IsManager]
    pagination_class = PagePagination

    class InviteSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        email = serializers.EmailField(required=False, allow_blank=True, default="")
        roles = serializers.ListField(child=serializers.ChoiceField(choices=ROLE_LABELS), allow_empty=False)

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Part of a username, name or email."),
            OpenApiParameter("show", str, enum=[value for value in selectors.PEOPLE_FILTERS if value]),
        ],
        responses=PersonSerializer(many=True),
        description="Everyone, by username, with roles, teams and state.",
        tags=["people"],
    )
    def get(self, request: Request) -> Response:
        show = request.query_params.get("show", "")
        if show not in selectors.PEOPLE_FILTERS:
            raise UserError(
                "Unknown filter.", {"show": f"One of: {', '.join(v for v in selectors.PEOPLE_FILTERS if v)}."}
            )
        return paginated_response(
            view=self,
            request=request,
            items=selectors.people_list(query=request.query_params.get("q", "").strip(), show=show),
            serialize=lambda page: PersonSerializer([_person_data(user) for user in page], many=True).data,
        )

    @extend_schema(
        request=InviteSerializer,
        responses={201: SetPasswordLinkSerializer, **ERRORS},
        description="Invite someone: an account without a password, and the one-time link to set it (valid "
        "PASSWORD_LINK_HOURS). " + INVITES_NEED_A_SESSION,
        tags=["people"],
    )
    def post(self, request: Request) -> Response:
        if not SignedInWithPassword().has_permission(request, self):
            self.permission_denied(request, message=INVITES_NEED_A_SESSION)
        data = self.InviteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        link = services.user_invite(actor=request.user, **data.validated_data)
        return Response(_link_data(request, link), status=status.HTTP_201_CREATED)


class PersonApi(APIView):
    permission_classes = [IsManager]

    class UpdateSerializer(serializers.Serializer):
        roles = serializers.ListField(child=serializers.ChoiceField(choices=ROLE_LABELS), required=False)
        is_active = serializers.BooleanField(required=False)

    @extend_schema(responses=PersonSerializer, tags=["people"])
    def get(self, request: Request, user_id: int) -> Response:
        return Response(PersonSerializer(_person_data(selectors.person_get(user_id=user_id))).data)

    @extend_schema(
        request=UpdateSerializer,
        responses={200: PersonSerializer, **ERRORS},
        description="Replace the roles, or deactivate (`is_active: false`) or reactivate someone. Nobody takes "
        "their own manager role or deactivates themselves; the last manager stays; superusers are changed in "
        "the admin.",
        tags=["people"],
    )
    def patch(self, request: Request, user_id: int) -> Response:
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        with transaction.atomic():
            if "roles" in fields:
                services.user_set_roles(user_id=user_id, roles=fields["roles"], actor=request.user)
            if "is_active" in fields:
                services.user_set_active(user_id=user_id, active=fields["is_active"], actor=request.user)
        return Response(PersonSerializer(_person_data(selectors.person_get(user_id=user_id))).data)


class PersonPasswordLinkApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(
        request=None,
        responses={201: SetPasswordLinkSerializer, **ERRORS},
        description="A new one-time link for the person to set their password. " + INVITES_NEED_A_SESSION,
        tags=["people"],
    )
    def post(self, request: Request, user_id: int) -> Response:
        if not SignedInWithPassword().has_permission(request, self):
            self.permission_denied(request, message=INVITES_NEED_A_SESSION)
        link = services.user_password_link(user_id=user_id, actor=request.user)
        return Response(_link_data(request, link), status=status.HTTP_201_CREATED)


class TeamSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    members = serializers.ListField(child=serializers.CharField(), help_text="Usernames.")


def _team_data(team) -> dict:
    return {"id": team.pk, "name": team.name, "members": sorted(team.user_set.values_list("username", flat=True))}


class TeamsApi(APIView):
    permission_classes = [IsManager]
    pagination_class = PagePagination

    class CreateSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=150)
        members = serializers.ListField(child=serializers.CharField(), required=False, default=list)

    @extend_schema(responses=TeamSerializer(many=True), description="Teams, by name.", tags=["people"])
    def get(self, request: Request) -> Response:
        return paginated_response(
            view=self,
            request=request,
            items=selectors.teams_list().prefetch_related("user_set"),
            serialize=lambda page: (
                TeamSerializer(
                    [
                        {"id": t.pk, "name": t.name, "members": sorted(u.username for u in t.user_set.all())}
                        for t in page
                    ],
                    many=True,
                ).data
            ),
        )

    @extend_schema(request=CreateSerializer, responses={201: TeamSerializer, **ERRORS}, tags=["people"])
    def post(self, request: Request) -> Response:
        data = self.CreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            team = services.team_create(name=data.validated_data["name"], actor=request.user)
            if data.validated_data["members"]:
                services.team_set_members(team_id=team.pk, usernames=data.validated_data["members"], actor=request.user)
        return Response(TeamSerializer(_team_data(team)).data, status=status.HTTP_201_CREATED)


class TeamApi(APIView):
    permission_classes = [IsManager]

    class UpdateSerializer(serializers.Serializer):
        members = serializers.ListField(child=serializers.CharField(), help_text="Every member, by username.")

    @extend_schema(responses=TeamSerializer, tags=["people"])
    def get(self, request: Request, team_id: int) -> Response:
        return Response(TeamSerializer(_team_data(selectors.team_get(team_id=team_id))).data)

    @extend_schema(
        request=UpdateSerializer,
        responses={200: TeamSerializer, **ERRORS},
        description="Replace the team's members.",
        tags=["people"],
    )
    def put(self, request: Request, team_id: int) -> Response:
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.team_set_members(team_id=team_id, usernames=data.validated_data["members"], actor=request.user)
        return Response(TeamSerializer(_team_data(selectors.team_get(team_id=team_id))).data)

    @extend_schema(
        responses={204: None, **ERRORS},
        description="Delete the team; its people and the pools it was added to stay.",
        tags=["people"],
    )
    def delete(self, request: Request, team_id: int) -> Response:
        services.team_delete(team_id=team_id, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
