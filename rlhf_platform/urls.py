from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from rlhf_platform import api, views

api_urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("auth/token/", api.TokenApi.as_view(), name="api-token"),
    path("auth/tokens/", api.TokenListCreateApi.as_view(), name="api-tokens"),
    path("auth/tokens/<id:token_id>/revoke/", api.TokenRevokeApi.as_view(), name="api-token-revoke"),
    path("auth/tokens/<id:token_id>/rotate/", api.TokenRotateApi.as_view(), name="api-token-rotate"),
    path("me/", api.CurrentUserApi.as_view(), name="api-me"),
    path("audit/", api.AuditLogApi.as_view(), name="api-audit"),
    path("people/", api.PeopleApi.as_view(), name="api-people"),
    path("people/<id:user_id>/", api.PersonApi.as_view(), name="api-person"),
    path("people/<id:user_id>/password-link/", api.PersonPasswordLinkApi.as_view(), name="api-person-password-link"),
    path("teams/", api.TeamsApi.as_view(), name="api-teams"),
    path("teams/<id:team_id>/", api.TeamApi.as_view(), name="api-team"),
    path("", include("labeling.api_urls")),
    path("training/", include("training.api_urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("manage/audit/", views.audit_log, name="audit-log"),
    # Before the pages: the API takes most requests, and patterns are tried in order.
    path("api/", include(api_urlpatterns)),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/set-password/<uidb64>/<token>/", views.SetPasswordView.as_view(), name="set-password"),
    path("account/tokens/", views.tokens_page, name="account-tokens"),
    path("account/tokens/<id:token_id>/revoke/", views.token_revoke_page, name="account-token-revoke"),
    path("account/tokens/<id:token_id>/rotate/", views.token_rotate_page, name="account-token-rotate"),
    path("manage/tokens/", views.manager_tokens_page, name="manager-tokens"),
    path("manage/tokens/<id:token_id>/revoke/", views.manager_token_revoke_page, name="manager-token-revoke"),
    path("manage/people/", views.people_page, name="people"),
    path("manage/people/<id:user_id>/", views.person_page, name="person"),
    path("manage/people/<id:user_id>/roles/", views.person_roles_page, name="person-roles"),
    path("manage/people/<id:user_id>/active/", views.person_active_page, name="person-active"),
    path("manage/people/<id:user_id>/link/", views.person_link_page, name="person-link"),
    path("manage/teams/", views.teams_page, name="teams"),
    path("manage/teams/<id:team_id>/", views.team_page, name="team"),
    path("manage/teams/<id:team_id>/delete/", views.team_delete_page, name="team-delete"),
    path("admin/", admin.site.urls),
    path("", include("labeling.urls")),
    path("", include("training.urls")),
]
