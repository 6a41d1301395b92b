"""The token endpoints: username and password for a new token, and listing, creating, revoking
and rotating one's tokens (managers: anyone's, to list and revoke)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from rlhf_platform.models import ApiToken
from rlhf_platform.roles import Role
from rlhf_platform.services import token_create

pytestmark = pytest.mark.django_db

PASSWORD = "a long passphrase"


def test_the_password_endpoint_issues_a_new_named_token_with_the_default_expiry(api_client, make_user, settings):
    make_user("bot", password=PASSWORD)
    first = api_client.post(reverse("api-token"), {"username": "bot", "password": PASSWORD}, format="json")
    second = api_client.post(
        reverse("api-token"), {"username": "bot", "password": PASSWORD, "name": "nightly export"}, format="json"
    )
    assert first.status_code == second.status_code == 200
    assert first.json()["token"] != second.json()["token"]
    assert second.json()["name"] == "nightly export"
    expires = parse_datetime(first.json()["expires_at"])
    expected = timezone.now() + timedelta(days=settings.API_TOKEN_DEFAULT_DAYS)
    assert abs(expires - expected) < timedelta(minutes=1)
    assert ApiToken.objects.filter(user__username="bot").count() == 2


def test_the_password_endpoint_issues_tokens_without_expiry_when_the_default_is_zero(api_client, make_user, settings):
    settings.API_TOKEN_DEFAULT_DAYS = 0
    make_user("bot", password=PASSWORD)
    response = api_client.post(reverse("api-token"), {"username": "bot", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert response.json()["expires_at"] is None


def test_the_password_endpoint_still_takes_form_data(api_client, make_user):
    make_user("bot", password=PASSWORD)
    response = api_client.post(reverse("api-token"), {"username": "bot", "password": PASSWORD})
    assert response.status_code == 200
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert api_client.get(reverse("api-me")).status_code == 200


def test_it_lists_only_ones_own_tokens_without_keys(api_client, make_user):
    user = make_user("bot")
    token_create(user=user, name="laptop", expires_at=None)
    token_create(user=make_user("other"), name="theirs", expires_at=None)
    api_client.force_authenticate(user)
    response = api_client.get(reverse("api-tokens"))
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["name"] for row in rows] == ["laptop"]
    assert "token" not in rows[0]
    assert rows[0]["status"] == "active"
    assert set(rows[0]) >= {"id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"}


def test_managers_list_everyones_tokens_and_others_may_not(api_client, make_user):
    token_create(user=make_user("a"), name="one", expires_at=None)
    token_create(user=make_user("b"), name="two", expires_at=None)
    api_client.force_authenticate(make_user("boss", role=Role.MANAGER))
    response = api_client.get(reverse("api-tokens"), {"all": "true"})
    assert response.status_code == 200
    assert sorted(row["username"] for row in response.json()["results"]) == ["a", "b"]

    api_client.force_authenticate(make_user("rex", role=Role.REVIEWER))
    assert api_client.get(reverse("api-tokens"), {"all": "true"}).status_code == 403


def test_it_creates_a_token_and_shows_the_key_once(api_client, make_user):
    user = make_user("bot")
    api_client.force_authenticate(user)
    expires = (timezone.now() + timedelta(days=3)).isoformat()
    response = api_client.post(reverse("api-tokens"), {"name": "ci", "expires_at": expires}, format="json")
    assert response.status_code == 201
    key = response.json()["token"]
    assert response.json()["name"] == "ci"
    listed = api_client.get(reverse("api-tokens")).json()["results"]
    assert key not in str(listed)

    api_client.force_authenticate(None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api_client.get(reverse("api-me")).status_code == 200


def test_a_token_created_without_expiry_uses_the_default_and_null_means_never(api_client, make_user, settings):
    api_client.force_authenticate(make_user("bot"))
    default = api_client.post(reverse("api-tokens"), {"name": "a"}, format="json").json()
    expected = timezone.now() + timedelta(days=settings.API_TOKEN_DEFAULT_DAYS)
    assert abs(parse_datetime(default["expires_at"]) - expected) < timedelta(minutes=1)
    never = api_client.post(reverse("api-tokens"), {"name": "b", "expires_at": None}, format="json").json()
    assert never["expires_at"] is None


def test_it_refuses_bad_input_with_field_errors(api_client, make_user):
    api_client.force_authenticate(make_user("bot"))
    past = (timezone.now() - timedelta(days=1)).isoformat()
    response = api_client.post(reverse("api-tokens"), {"name": "ci", "expires_at": past}, format="json")
    assert response.status_code == 400
    assert "expires_at" in response.json()["errors"]
    response = api_client.post(reverse("api-tokens"), {"name": ""}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["errors"]
    assert not ApiToken.objects.exists()


def test_it_revokes_ones_own_token(api_client, make_user):
    user = make_user("bot")
    created = token_create(user=user, name="ci", expires_at=None)
    api_client.force_authenticate(user)
    response = api_client.post(reverse("api-token-revoke", args=[created.token.pk]))
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    api_client.force_authenticate(None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {created.key}")
    assert api_client.get(reverse("api-me")).status_code == 401


def test_a_manager_revokes_anyones_token_and_a_reviewer_cannot(api_client, make_user):
    created = token_create(user=make_user("owner"), name="ci", expires_at=None)
    api_client.force_authenticate(make_user("rex", role=Role.REVIEWER))
    assert api_client.post(reverse("api-token-revoke", args=[created.token.pk])).status_code == 404
    api_client.force_authenticate(make_user("boss", role=Role.MANAGER))
    assert api_client.post(reverse("api-token-revoke", args=[created.token.pk])).status_code == 200
    assert ApiToken.objects.get(pk=created.token.pk).revoked_at is not None


def test_it_rotates_ones_own_token(api_client, make_user):
    user = make_user("bot")
    created = token_create(user=user, name="ci", expires_at=None)
    api_client.force_authenticate(user)
    response = api_client.post(reverse("api-token-rotate", args=[created.token.pk]))
    assert response.status_code == 201
    assert response.json()["name"] == "ci"
    assert response.json()["token"] != created.key

    again = api_client.post(reverse("api-token-rotate", args=[created.token.pk]))  # the old one is revoked now
    assert again.status_code == 409
    assert again.json()["detail"] == "This token is revoked; create a new one instead."


def test_the_token_endpoints_need_a_signed_in_caller(api_client, db):
    assert api_client.get(reverse("api-tokens")).status_code == 401
    assert api_client.post(reverse("api-tokens"), {"name": "x"}, format="json").status_code == 401
    assert api_client.post(reverse("api-token-revoke", args=[1])).status_code == 401


def test_the_schema_documents_the_token_endpoints(api_client, reviewer):
    import yaml

    api_client.force_authenticate(reviewer)
    schema = yaml.safe_load(api_client.get(reverse("api-schema")).content)
    assert {"/api/auth/tokens/", "/api/auth/tokens/{token_id}/revoke/", "/api/auth/tokens/{token_id}/rotate/"} <= set(
        schema["paths"]
    )


def test_a_token_cannot_make_or_rotate_tokens_but_can_list_and_revoke(api_client, make_user):
    # Otherwise a leaked token could mint a successor that outlives its own revocation.
    user = make_user("bot")
    created = token_create(user=user, name="ci", expires_at=None)
    other = token_create(user=user, name="other", expires_at=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {created.key}")

    response = api_client.post(reverse("api-tokens"), {"name": "successor"}, format="json")
    assert response.status_code == 403
    assert "password" in response.json()["detail"]
    assert api_client.post(reverse("api-token-rotate", args=[created.token.pk])).status_code == 403
    assert ApiToken.objects.filter(user=user).count() == 2
    assert ApiToken.objects.get(pk=created.token.pk).revoked_at is None

    assert api_client.get(reverse("api-tokens")).status_code == 200
    assert api_client.post(reverse("api-token-revoke", args=[other.token.pk])).status_code == 200
