from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from rlhf_platform import api, views

api_urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("auth/token/", api.TokenApi.as_view(), name="api-token"),
    path("me/", api.CurrentUserApi.as_view(), name="api-me"),
    path("audit/", api.AuditLogApi.as_view(), name="api-audit"),
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
    path("admin/", admin.site.urls),
    path("", include("labeling.urls")),
    path("", include("training.urls")),
]
