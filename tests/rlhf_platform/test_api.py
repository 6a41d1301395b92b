import re
from datetime import timedelta

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from rlhf_platform.models import ApiToken, token_digest
from rlhf_platform.services import token_create


@pytest.mark.django_db
def test_it_hides_the_schema_from_anonymous_callers(api_client):
    assert api_client.get(reverse("api-schema")).status_code == 401
    assert api_client.get(reverse("api-docs")).status_code == 401


def test_it_serves_an_openapi_schema_to_signed_in_users(api_client, reviewer):
    api_client.force_authenticate(reviewer)
    response = api_client.get(reverse("api-schema"))
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/me/" in schema["paths"]
    assert "/api/auth/token/" in schema["paths"]
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_it_generates_a_schema_without_warnings(db):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_it_serves_the_docs_page_from_local_static_files(client, reviewer):
    client.force_login(reviewer)
    response = client.get(reverse("api-docs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    # Offline machines: every script and stylesheet must come from this server.
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert assets, html
    assert all(asset.startswith("/static/") for asset in assets), assets


def test_it_issues_a_token_that_authenticates_the_api(api_client, make_user):
    from rlhf_platform.roles import Role

    make_user("bot", role=Role.MANAGER, password="a long passphrase")
    response = api_client.post(reverse("api-token"), {"username": "bot", "password": "a long passphrase"})
    assert response.status_code == 200
    token = response.json()["token"]
    assert ApiToken.objects.get(user__username="bot").digest == token_digest(token)

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    me = api_client.get(reverse("api-me"))
    assert me.status_code == 200
    assert me.json()["username"] == "bot"
    assert me.json()["roles"] == ["managers"]


def test_it_refuses_a_token_for_a_wrong_password(api_client, make_user):
    make_user("bot", password="a long passphrase")
    response = api_client.post(reverse("api-token"), {"username": "bot", "password": "nope"})
    assert response.status_code == 400
    assert response.json() == {"detail": "Unable to log in with provided credentials."}


def test_it_refuses_a_bad_token(api_client, db):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert api_client.get(reverse("api-me")).status_code == 401


def test_it_requires_csrf_for_session_authenticated_writes(reviewer):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(reviewer)
    # A session-authenticated POST without a CSRF token is refused before the view runs.
    response = client.post(reverse("api-me"), {})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


@pytest.mark.parametrize("expires", [None, timedelta(days=1)])
@pytest.mark.parametrize(
    ("roles", "expected"),
    [((), []), (("reviewers",), ["reviewers"]), (("managers", "reviewers"), ["managers", "reviewers"])],
)
def test_a_token_request_reads_the_user_and_roles_in_one_query(
    api_client, make_user, django_assert_num_queries, roles, expected, expires
):
    from django.contrib.auth.models import Group

    user = make_user("both")
    user.groups.add(*(Group.objects.get_or_create(name=name)[0] for name in roles))
    Group.objects.get_or_create(name="someone-elses-group")
    created = token_create(user=user, name="loop", expires_at=expires and timezone.now() + expires)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {created.key}")
    # The first use records when the token was used (a write, every few minutes at most); the
    # expiry and revocation checks come with the one read.
    api_client.get(reverse("api-me"))
    with django_assert_num_queries(1):
        me = api_client.get(reverse("api-me"))
    assert me.status_code == 200
    assert me.json()["username"] == "both"
    assert me.json()["roles"] == expected


def test_it_refuses_the_token_of_an_inactive_user(api_client, make_user):
    created = token_create(user=make_user("gone", is_active=False), name="ci", expires_at=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {created.key}")
    assert api_client.get(reverse("api-me")).status_code == 401
