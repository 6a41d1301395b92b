"""The managers' people and team pages, and the set-password page an invitee opens."""

import re

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from rlhf_platform import services
from rlhf_platform.roles import Role, user_is_manager

pytestmark = pytest.mark.django_db


def link_in(html: str) -> str:
    return re.search(r'<code id="new-link">https?://[^/]+(/accounts/set-password/[^<]+)</code>', html)[1]


def test_reviewers_and_visitors_are_kept_out(reviewer_client, client, manager):
    for name, kwargs in (("people", {}), ("person", {"user_id": manager.pk}), ("teams", {})):
        assert reviewer_client.get(reverse(name, kwargs=kwargs)).status_code == 403
        assert client.get(reverse(name, kwargs=kwargs))["Location"].startswith(reverse("login"))


def test_the_people_page_lists_everyone_with_roles_teams_and_state(manager_client, manager, reviewer, make_user):
    services.user_invite(username="newbie", roles=["reviewer"], actor=manager)
    make_user("gone", role=Role.REVIEWER, is_active=False)
    team = services.team_create(name="Night shift", actor=manager)
    services.team_set_members(team_id=team.pk, usernames=[reviewer.username], actor=manager)

    response = manager_client.get(reverse("people"))

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    rows = {row["user"].username: row for row in response.context["rows"]}
    assert set(rows) == {"mia-manager", "rex-reviewer", "newbie", "gone"}
    assert rows["rex-reviewer"]["teams"] == ["Night shift"] and rows["rex-reviewer"]["roles"] == ["reviewer"]
    assert rows["newbie"]["invited"]
    html = response.content.decode()
    assert "deactivated" in html and "invited" in html
    filtered = manager_client.get(reverse("people"), {"show": "inactive"}).context["rows"]
    assert [row["user"].username for row in filtered] == ["gone"]
    assert [r["user"].username for r in manager_client.get(reverse("people"), {"q": "NEW"}).context["rows"]] == [
        "newbie"
    ]


def test_inviting_shows_the_link_once_and_it_signs_the_person_in(manager_client):
    response = manager_client.post(reverse("people"), {"username": "ria", "email": "", "roles": ["reviewers"]})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    path = link_in(response.content.decode())
    assert "/accounts/set-password/" not in manager_client.get(reverse("people")).content.decode()

    invitee = Client()
    opened = invitee.get(path)
    assert opened.status_code == 302  # the token moves from the address into the session
    form_page = invitee.get(opened["Location"])
    assert form_page.status_code == 200 and "Choose your password" in form_page.content.decode()
    weak = invitee.post(opened["Location"], {"new_password1": "ria", "new_password2": "ria"})
    assert weak.status_code == 200 and "too short" in weak.content.decode()
    done = invitee.post(
        opened["Location"],
        {"new_password1": "a long and fine passphrase", "new_password2": "a long and fine passphrase"},
    )
    assert done.status_code == 302 and done["Location"] == reverse("home")
    assert invitee.get(reverse("labeling:reviewer-queue")).status_code == 200  # signed in as a reviewer
    used = Client().get(path, follow=True)
    assert "This link does not work" in used.content.decode()
    assert get_user_model().objects.get(username="ria").check_password("a long and fine passphrase")


def test_a_bad_invitation_shows_field_errors_and_creates_nobody(manager_client):
    response = manager_client.post(reverse("people"), {"username": "mia-manager", "roles": ["reviewers"]})

    assert response.status_code == 400
    assert "is taken" in response.content.decode()
    assert manager_client.post(reverse("people"), {"username": "x"}).status_code == 400  # no role
    assert get_user_model().objects.count() == 1


def test_a_tampered_or_unknown_link_does_not_work(client, manager):
    link = services.user_invite(username="ria", roles=["reviewer"], actor=manager)
    for path in (link.path[:-3] + "xyz/", link.path.replace(link.path.split("/")[3], "MTAwMDAw")):
        page = client.get(path, follow=True)
        assert page.status_code == 200
        assert "This link does not work" in page.content.decode()


def test_the_person_page_changes_roles_state_and_issues_a_new_link(manager_client, manager, reviewer):
    url = reverse("person", kwargs={"user_id": reviewer.pk})
    assert manager_client.get(url).status_code == 200

    manager_client.post(reverse("person-roles", kwargs={"user_id": reviewer.pk}), {"roles": ["managers"]})
    assert user_is_manager(get_user_model().objects.get(pk=reviewer.pk))
    linked = manager_client.post(reverse("person-link", kwargs={"user_id": reviewer.pk}))
    assert linked.status_code == 200 and "no-store" in linked["Cache-Control"]
    assert link_in(linked.content.decode()).startswith("/accounts/set-password/")
    off = manager_client.post(reverse("person-active", kwargs={"user_id": reviewer.pk}), {"active": "0"})
    assert off.status_code == 302
    assert not get_user_model().objects.get(pk=reviewer.pk).is_active
    refused = manager_client.post(
        reverse("person-active", kwargs={"user_id": manager.pk}), {"active": "0"}, follow=True
    )
    assert "You cannot deactivate yourself." in refused.content.decode()
    assert get_user_model().objects.get(pk=manager.pk).is_active
    assert manager_client.post(reverse("person-active", kwargs={"user_id": 10**9}), {"active": "0"}).status_code == 404
    assert LogEntry.objects.count() == 3


def test_teams_are_created_filled_and_deleted_from_their_pages(manager_client, reviewer):
    assert manager_client.post(reverse("teams"), {"name": "reviewers"}).status_code == 400  # a role's name
    created = manager_client.post(reverse("teams"), {"name": "Team A"})
    team = Group.objects.get(name="Team A")
    assert created["Location"] == reverse("team", kwargs={"team_id": team.pk})
    listing = manager_client.get(reverse("teams"))
    assert [t.name for t in listing.context["teams"]] == ["Team A"]  # the role groups are not teams
    manager_client.post(reverse("team", kwargs={"team_id": team.pk}), {"members": [reviewer.username]})
    assert list(team.user_set.all()) == [reviewer]
    role_group = Group.objects.get(name=Role.REVIEWER)
    assert manager_client.get(reverse("team", kwargs={"team_id": role_group.pk})).status_code == 404
    assert manager_client.post(reverse("team-delete", kwargs={"team_id": team.pk})).status_code == 302
    assert not Group.objects.filter(name="Team A").exists()


def test_user_text_is_escaped(manager_client, manager):
    services.team_create(name="<script>alert(1)</script>", actor=manager)
    html = manager_client.get(reverse("teams")).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
