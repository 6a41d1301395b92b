"""The people and teams API: list, invite (a session only), change, teams, and a pool taking a team."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from rlhf_platform import services
from rlhf_platform.roles import Role, user_is_manager
from tests.labeling.factories import make_campaign, pairwise_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def session_api(manager) -> APIClient:
    client = APIClient()
    client.force_login(manager)
    return client


@pytest.fixture
def token_api(manager) -> APIClient:
    made = services.token_create(user=manager, name="script", expires_at=None)
    return APIClient(HTTP_AUTHORIZATION=f"Token {made.key}")


def test_managers_list_people_with_roles_and_filters(session_api, reviewer, make_user):
    make_user("gone", role=Role.REVIEWER, is_active=False)

    listing = session_api.get("/api/people/").json()
    assert [(p["username"], p["roles"], p["is_active"]) for p in listing["results"]] == [
        ("gone", ["reviewer"], False),
        ("mia-manager", ["manager"], True),
        ("rex-reviewer", ["reviewer"], True),
    ]
    assert [p["username"] for p in session_api.get("/api/people/?show=inactive").json()["results"]] == ["gone"]
    assert session_api.get("/api/people/?show=everyone-else").status_code == 400
    assert session_api.get("/api/people/?q=%00rex").json()["count"] == 1


def test_an_invitation_returns_the_link_once(session_api):
    made = session_api.post("/api/people/", {"username": "ria", "roles": ["reviewer"]}, format="json")

    assert made.status_code == 201
    body = made.json()
    assert body["person"]["invited"] and body["person"]["roles"] == ["reviewer"]
    assert body["set_password_url"].startswith("http://testserver/accounts/set-password/")
    refused = session_api.post("/api/people/", {"username": "ria", "roles": ["reviewer"]}, format="json")
    assert refused.status_code == 400 and "username" in refused.json()["errors"]


def test_a_token_cannot_invite_nor_issue_links(token_api, reviewer):
    assert token_api.post("/api/people/", {"username": "ria", "roles": ["manager"]}, format="json").status_code == 403
    assert token_api.post(f"/api/people/{reviewer.pk}/password-link/").status_code == 403
    assert not get_user_model().objects.filter(username="ria").exists()


def test_roles_and_state_change_with_their_guards(token_api, manager, reviewer):
    changed = token_api.patch(f"/api/people/{reviewer.pk}/", {"roles": ["reviewer", "manager"]}, format="json")
    assert changed.status_code == 200 and changed.json()["roles"] == ["reviewer", "manager"]
    assert user_is_manager(get_user_model().objects.get(pk=reviewer.pk))
    off = token_api.patch(f"/api/people/{manager.pk}/", {"is_active": False}, format="json")
    assert off.status_code == 400 and off.json()["detail"] == "You cannot deactivate yourself."
    assert token_api.patch("/api/people/999999/", {"is_active": False}, format="json").status_code == 404


def test_teams_and_adding_one_to_a_pool(token_api, manager, reviewer):
    made = token_api.post("/api/teams/", {"name": "Team A", "members": [reviewer.username]}, format="json")
    assert made.status_code == 201 and made.json()["members"] == [reviewer.username]
    team_id = made.json()["id"]
    assert [t["name"] for t in token_api.get("/api/teams/").json()["results"]] == ["Team A"]
    role_group = Group.objects.get(name=Role.REVIEWER)
    assert token_api.get(f"/api/teams/{role_group.pk}/").status_code == 404
    campaign = make_campaign(manager=manager, reviewers=[], tasks=pairwise_rows(2))

    added = token_api.post(f"/api/campaigns/{campaign.pk}/reviewers/add-team/", {"team": team_id}, format="json")

    assert added.status_code == 200
    assert added.json() == {"added": [reviewer.username], "reviewers": [reviewer.username]}
    assert token_api.put(f"/api/teams/{team_id}/", {"members": []}, format="json").json()["members"] == []
    assert token_api.delete(f"/api/teams/{team_id}/").status_code == 204
    gone = token_api.post(f"/api/campaigns/{campaign.pk}/reviewers/add-team/", {"team": team_id}, format="json")
    assert gone.status_code == 400 and gone.json()["errors"] == {"team": "Choose a team from the list."}


def test_reviewers_are_refused(reviewer):
    client = APIClient()
    client.force_authenticate(reviewer)
    assert client.get("/api/people/").status_code == 403
    assert client.get("/api/teams/").status_code == 403
