"""Tokens issued before named tokens (DRF's authtoken) keep working after the migration, and their
plain keys are no longer stored."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from rlhf_platform.models import token_digest

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("rlhf_platform", "0002_api_tokens"), ("authtoken", "0004_alter_tokenproxy_options")]
AFTER = [("rlhf_platform", "0003_api_tokens_from_drf_tokens")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_drf_tokens_become_api_tokens_that_still_work(api_client, make_user):
    user = make_user("script-owner")
    try:
        old_apps = _migrate(BEFORE)
        key = old_apps.get_model("authtoken", "Token").objects.create(key="a" * 40, user_id=user.pk).key
        new_apps = _migrate(AFTER)
    finally:
        _migrate([("rlhf_platform", max_leaf()), ("authtoken", "0004_alter_tokenproxy_options")])

    moved = new_apps.get_model("rlhf_platform", "ApiToken").objects.get(user_id=user.pk)
    assert moved.digest == token_digest(key)
    assert moved.expires_at is None
    assert not new_apps.get_model("authtoken", "Token").objects.exists()
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api_client.get(reverse("api-me")).json()["username"] == "script-owner"


def max_leaf() -> str:
    executor = MigrationExecutor(connection)
    return max(name for app, name in executor.loader.graph.leaf_nodes() if app == "rlhf_platform")
