"""Named API tokens: stored as a hash, shown once, optional expiry, revocable, rotatable; the
token authentication still reads token, user and roles in one query."""

import hashlib
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from rlhf_platform.errors import UserError
from rlhf_platform.models import ApiToken
from rlhf_platform.roles import Role
from rlhf_platform.services import token_create, token_revoke, token_rotate

pytestmark = pytest.mark.django_db


def _use(api_client, key: str):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api_client.get(reverse("api-me"))


def test_it_stores_only_a_hash_of_the_key(make_user):
    created = token_create(user=make_user("bot"), name="laptop", expires_at=None)
    stored = ApiToken.objects.get(pk=created.token.pk)
    assert stored.digest == hashlib.sha256(created.key.encode()).hexdigest()
    assert created.key not in {value for value in vars(stored).values() if isinstance(value, str)}
    assert created.key.startswith(stored.prefix)
    assert len(created.key) >= 40


def test_a_created_token_authenticates_the_api(api_client, make_user):
    created = token_create(user=make_user("bot", role=Role.MANAGER), name="ci", expires_at=None)
    me = _use(api_client, created.key)
    assert me.status_code == 200
    assert me.json() == {"id": created.token.user_id, "username": "bot", "roles": ["managers"]}


def test_a_user_may_hold_several_named_tokens(api_client, make_user):
    user = make_user("bot")
    first = token_create(user=user, name="laptop", expires_at=None)
    second = token_create(user=user, name="ci", expires_at=None)
    assert first.key != second.key
    assert _use(api_client, first.key).status_code == 200
    assert _use(api_client, second.key).status_code == 200


def test_a_revoked_token_is_refused_with_drfs_message(api_client, make_user):
    user = make_user("bot")
    created = token_create(user=user, name="ci", expires_at=None)
    token_revoke(token_id=created.token.pk, actor=user)
    response = _use(api_client, created.key)
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token."


def test_an_expired_token_is_refused_saying_so(api_client, make_user):
    created = token_create(user=make_user("bot"), name="ci", expires_at=timezone.now() + timedelta(hours=1))
    assert _use(api_client, created.key).status_code == 200
    ApiToken.objects.filter(pk=created.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _use(api_client, created.key)
    assert response.status_code == 401
    assert response.json()["detail"] == "Token expired."


def test_an_unknown_token_is_refused(api_client, db):
    response = _use(api_client, "not-a-real-token")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token."


def test_the_token_of_an_inactive_user_is_refused(api_client, make_user):
    created = token_create(user=make_user("gone", is_active=False), name="ci", expires_at=None)
    response = _use(api_client, created.key)
    assert response.status_code == 401
    assert response.json()["detail"] == "User inactive or deleted."


def test_it_records_the_last_use_at_most_once_per_interval(api_client, make_user, settings):
    created = token_create(user=make_user("bot"), name="loop", expires_at=None)
    assert created.token.last_used_at is None
    _use(api_client, created.key)
    first = ApiToken.objects.get(pk=created.token.pk).last_used_at
    assert first is not None
    _use(api_client, created.key)
    assert ApiToken.objects.get(pk=created.token.pk).last_used_at == first

    long_ago = first - timedelta(seconds=settings.API_TOKEN_LAST_USED_INTERVAL_S + 1)
    ApiToken.objects.filter(pk=created.token.pk).update(last_used_at=long_ago)
    _use(api_client, created.key)
    assert ApiToken.objects.get(pk=created.token.pk).last_used_at > first


def test_it_refuses_an_expiry_in_the_past_or_an_empty_name(make_user):
    user = make_user("bot")
    with pytest.raises(UserError) as error:
        token_create(user=user, name="ci", expires_at=timezone.now() - timedelta(minutes=1))
    assert "expires_at" in error.value.errors
    with pytest.raises(UserError) as error:
        token_create(user=user, name="   ", expires_at=None)
    assert "name" in error.value.errors
    with pytest.raises(UserError) as error:
        token_create(user=user, name="x" * 101, expires_at=None)
    assert "name" in error.value.errors
    assert not ApiToken.objects.exists()


def test_only_the_owner_or_a_manager_may_revoke(make_user):
    owner = make_user("owner")
    other = make_user("other", role=Role.REVIEWER)
    manager = make_user("boss", role=Role.MANAGER)
    created = token_create(user=owner, name="ci", expires_at=None)

    with pytest.raises(UserError) as error:
        token_revoke(token_id=created.token.pk, actor=other)
    assert error.value.status_code == 404
    assert ApiToken.objects.get(pk=created.token.pk).revoked_at is None

    revoked = token_revoke(token_id=created.token.pk, actor=manager)
    assert revoked.revoked_at is not None
    assert revoked.revoked_by == manager


def test_revoking_twice_keeps_the_first_time(make_user):
    user = make_user("bot")
    created = token_create(user=user, name="ci", expires_at=None)
    first = token_revoke(token_id=created.token.pk, actor=user).revoked_at
    assert token_revoke(token_id=created.token.pk, actor=user).revoked_at == first


def test_rotating_revokes_the_old_key_and_issues_a_new_one_with_the_same_name_and_lifetime(api_client, make_user):
    user = make_user("bot")
    old = token_create(user=user, name="ci", expires_at=timezone.now() + timedelta(days=10))
    new = token_rotate(token_id=old.token.pk, actor=user)
    assert new.token.name == "ci"
    lifetime = new.token.expires_at - new.token.created_at
    assert abs(lifetime - timedelta(days=10)) < timedelta(minutes=1)
    assert _use(api_client, old.key).status_code == 401
    assert _use(api_client, new.key).status_code == 200


def test_only_the_owner_may_rotate_a_token(make_user):
    # Rotating shows the new key: a manager may revoke anyone's token but never read one.
    owner = make_user("owner")
    created = token_create(user=owner, name="ci", expires_at=None)
    with pytest.raises(UserError) as error:
        token_rotate(token_id=created.token.pk, actor=make_user("boss", role=Role.MANAGER))
    assert error.value.status_code == 404
    assert ApiToken.objects.get(pk=created.token.pk).revoked_at is None


def test_a_revoked_token_cannot_be_rotated(make_user):
    user = make_user("bot")
    created = token_create(user=user, name="ci", expires_at=None)
    token_revoke(token_id=created.token.pk, actor=user)
    with pytest.raises(UserError):
        token_rotate(token_id=created.token.pk, actor=user)
    assert ApiToken.objects.count() == 1


@pytest.mark.django_db
def test_a_locked_database_when_recording_use_does_not_fail_the_request(make_user, monkeypatch):
    from django.db import OperationalError
    from rest_framework.test import APIClient

    from rlhf_platform.services import token_create

    def locked(**kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr("rlhf_platform.services.token_mark_used", locked)
    key = token_create(user=make_user("bot"), name="script", expires_at=None).key

    response = APIClient().get("/api/me/", HTTP_AUTHORIZATION=f"Token {key}")

    assert response.status_code == 200
