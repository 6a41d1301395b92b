"""The token pages: everyone's own (list, create with name and optional expiry, revoke, rotate;
the key shown once) and the managers' list of all tokens with revoke."""

import pytest
from django.test import Client
from django.urls import reverse

from rlhf_platform.models import ApiToken
from rlhf_platform.roles import Role
from rlhf_platform.services import token_create

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_go_to_the_login_page(client):
    for url in (reverse("account-tokens"), reverse("manager-tokens")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_the_page_lists_ones_own_tokens_only(reviewer_client, reviewer, make_user):
    token_create(user=reviewer, name="my laptop", expires_at=None)
    token_create(user=make_user("other"), name="someone else's", expires_at=None)
    response = reviewer_client.get(reverse("account-tokens"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "my laptop" in html
    assert "someone else" not in html
    assert response["Cache-Control"].startswith("max-age=0") or "no-store" in response["Cache-Control"]


def test_creating_shows_the_key_once(reviewer_client, reviewer):
    response = reviewer_client.post(reverse("account-tokens"), {"name": "ci", "expires_in_days": "30"})
    assert response.status_code == 200
    token = ApiToken.objects.get(user=reviewer)
    key = response.context["new_key"]
    assert key.startswith(token.prefix)
    assert key in response.content.decode()
    assert token.expires_at is not None
    assert "no-store" in response["Cache-Control"]
    assert key not in reviewer_client.get(reverse("account-tokens")).content.decode()


def test_a_token_may_never_expire(reviewer_client, reviewer):
    reviewer_client.post(reverse("account-tokens"), {"name": "ci", "expires_in_days": ""})
    assert ApiToken.objects.get(user=reviewer).expires_at is None


def test_bad_input_shows_field_errors_and_creates_nothing(reviewer_client):
    response = reviewer_client.post(reverse("account-tokens"), {"name": "", "expires_in_days": "30"})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    response = reviewer_client.post(reverse("account-tokens"), {"name": "ci", "expires_in_days": "-3"})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_the_token_name_is_escaped(reviewer_client, reviewer):
    token_create(user=reviewer, name="<script>alert(1)</script>", expires_at=None)
    html = reviewer_client.get(reverse("account-tokens")).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_changes_need_post_and_a_csrf_token(reviewer):
    created = token_create(user=reviewer, name="ci", expires_at=None)
    client = Client(enforce_csrf_checks=True)
    client.force_login(reviewer)
    assert client.get(reverse("account-token-revoke", args=[created.token.pk])).status_code == 405
    assert client.post(reverse("account-token-revoke", args=[created.token.pk])).status_code == 403
    assert client.post(reverse("account-tokens"), {"name": "x", "expires_in_days": ""}).status_code == 403
    assert ApiToken.objects.get(pk=created.token.pk).revoked_at is None
    assert ApiToken.objects.count() == 1


def test_revoking_ones_own_token(reviewer_client, reviewer):
    created = token_create(user=reviewer, name="ci", expires_at=None)
    response = reviewer_client.post(reverse("account-token-revoke", args=[created.token.pk]), follow=True)
    assert response.status_code == 200
    assert ApiToken.objects.get(pk=created.token.pk).revoked_at is not None
    assert "Revoked" in response.content.decode()


def test_a_reviewer_cannot_revoke_someone_elses_token(reviewer_client, make_user):
    created = token_create(user=make_user("other"), name="ci", expires_at=None)
    assert reviewer_client.post(reverse("account-token-revoke", args=[created.token.pk])).status_code == 404
    assert ApiToken.objects.get(pk=created.token.pk).revoked_at is None


def test_rotating_shows_the_new_key_once(reviewer_client, reviewer):
    created = token_create(user=reviewer, name="ci", expires_at=None)
    response = reviewer_client.post(reverse("account-token-rotate", args=[created.token.pk]))
    assert response.status_code == 200
    new_key = response.context["new_key"]
    assert new_key != created.key
    assert ApiToken.objects.get(pk=created.token.pk).revoked_at is not None


def test_the_manager_page_lists_everyones_tokens_and_revokes_them(manager_client, make_user):
    created = token_create(user=make_user("rita", role=Role.REVIEWER), name="rita's script", expires_at=None)
    response = manager_client.get(reverse("manager-tokens"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "rita" in html
    assert "rita&#x27;s script" in html
    response = manager_client.post(reverse("manager-token-revoke", args=[created.token.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("manager-tokens")
    assert ApiToken.objects.get(pk=created.token.pk).revoked_at is not None


def test_the_manager_page_is_for_managers(reviewer_client, reviewer):
    created = token_create(user=reviewer, name="ci", expires_at=None)
    assert reviewer_client.get(reverse("manager-tokens")).status_code == 403
    assert reviewer_client.post(reverse("manager-token-revoke", args=[created.token.pk])).status_code == 403


def test_the_navigation_links_the_token_pages(reviewer_client, manager_client):
    assert reverse("account-tokens") in reviewer_client.get(reverse("account-tokens")).content.decode()
    assert reverse("manager-tokens") not in reviewer_client.get(reverse("account-tokens")).content.decode()
    assert reverse("manager-tokens") in manager_client.get(reverse("account-tokens")).content.decode()


def test_the_manager_page_filters_by_user(manager_client, make_user):
    token_create(user=make_user("rita"), name="rita's", expires_at=None)
    token_create(user=make_user("otto"), name="otto's", expires_at=None)
    html = manager_client.get(reverse("manager-tokens"), {"user": "otto"}).content.decode()
    assert "otto&#x27;s" in html
    assert "rita&#x27;s" not in html


def test_the_admin_no_longer_offers_drfs_tokens(db):
    # They would look valid there and never authenticate anything.
    from django.contrib import admin
    from rest_framework.authtoken.models import TokenProxy

    assert TokenProxy not in admin.site._registry
