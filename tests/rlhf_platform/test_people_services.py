"""People and teams through the services: invitations with a one-time link, roles, deactivation, teams."""

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from rlhf_platform import services
from rlhf_platform.errors import UserError
from rlhf_platform.roles import Role, user_is_manager, user_is_reviewer

pytestmark = pytest.mark.django_db


def token_of(link: services.SetPasswordLink) -> str:
    return link.path.rstrip("/").rsplit("/", 1)[1]


def actions() -> list[str]:
    return [entry.additional_data["action"] for entry in LogEntry.objects.order_by("pk")]


def test_an_invitation_makes_an_account_without_a_password_and_a_link_that_works_once(manager):
    link = services.user_invite(username="ria", roles=["reviewer"], email="ria@example.com", actor=manager)

    user = link.user
    assert not user.has_usable_password()
    assert user_is_reviewer(user) and not user_is_manager(user)
    assert link.path.startswith("/accounts/set-password/")
    assert services.set_password_tokens.check_token(user, token_of(link))
    assert link.expires_at > timezone.now() + timedelta(hours=71)
    services.user_password_set_by_link(user=user, password="a long and fine passphrase")
    user.refresh_from_db()
    assert user.check_password("a long and fine passphrase")
    assert not services.set_password_tokens.check_token(user, token_of(link))
    assert actions() == ["user.invite", "user.password_set"]


def test_a_link_expires_after_the_configured_hours(manager, settings):
    link = services.user_invite(username="ria", roles=["reviewer"], actor=manager)
    settings.PASSWORD_RESET_TIMEOUT = 3600

    later = services.SetPasswordTokenGenerator()
    later._now = lambda: timezone.now().replace(tzinfo=None) + timedelta(hours=2)

    assert services.set_password_tokens.check_token(link.user, token_of(link))
    assert not later.check_token(link.user, token_of(link))


def test_deactivating_voids_the_link(manager):
    link = services.user_invite(username="ria", roles=["reviewer"], actor=manager)

    services.user_set_active(user_id=link.user.pk, active=False, actor=manager)

    link.user.refresh_from_db()
    assert not services.set_password_tokens.check_token(link.user, token_of(link))


@pytest.mark.parametrize(
    ("username", "roles", "email", "field"),
    [
        ("", ["reviewer"], "", "username"),
        ("has space", ["reviewer"], "", "username"),
        ("nul\x00name", ["reviewer"], "", "username"),
        ("x" * 151, ["reviewer"], "", "username"),
        ("Mia-Manager", ["reviewer"], "", "username"),  # taken, case aside
        ("ria", [], "", "roles"),
        ("ria", ["admin"], "", "roles"),
        ("ria", ["reviewer"], "not an email", "email"),
    ],
)
def test_a_bad_invitation_is_refused_by_field_and_creates_nothing(manager, username, roles, email, field):
    with pytest.raises(UserError) as refused:
        services.user_invite(username=username, roles=roles, email=email, actor=manager)

    assert field in refused.value.errors
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["mia-manager"]
    assert actions() == []


def test_a_password_given_by_a_script_goes_through_the_validators(db):
    with pytest.raises(UserError) as refused:
        services.user_create(username="boss", roles=["manager"], password="12345678", actor=None)
    assert "password" in refused.value.errors
    assert not get_user_model().objects.filter(username="boss").exists()

    boss = services.user_create(username="boss", roles=["manager"], password="a long and fine passphrase", actor=None)
    assert user_is_manager(boss) and boss.check_password("a long and fine passphrase")
    assert actions() == ["user.create"]


def test_roles_are_replaced_and_recorded(manager, reviewer):
    services.user_set_roles(user_id=reviewer.pk, roles=["reviewer", "manager"], actor=manager)

    reviewer = get_user_model().objects.get(pk=reviewer.pk)
    assert user_is_manager(reviewer) and user_is_reviewer(reviewer)
    entry = LogEntry.objects.get()
    assert entry.changes == {"roles": [["reviewer"], ["manager", "reviewer"]]}


def test_nobody_takes_their_own_manager_role_and_the_last_manager_stays(manager, make_user):
    with pytest.raises(UserError, match="your own manager role"):
        services.user_set_roles(user_id=manager.pk, roles=["reviewer"], actor=manager)
    with pytest.raises(UserError, match="last manager"):
        services.user_set_roles(user_id=manager.pk, roles=[], actor=None)
    with pytest.raises(UserError, match="yourself"):
        services.user_set_active(user_id=manager.pk, active=False, actor=manager)
    other = make_user("other-manager", role=Role.MANAGER)
    services.user_set_roles(user_id=manager.pk, roles=["reviewer"], actor=other)
    assert not user_is_manager(get_user_model().objects.get(pk=manager.pk))


def test_a_manager_cannot_change_a_superuser(manager):
    boss = get_user_model().objects.create_superuser(username="root", password="x" * 20)

    for change in (
        lambda: services.user_set_active(user_id=boss.pk, active=False, actor=manager),
        lambda: services.user_set_roles(user_id=boss.pk, roles=[], actor=manager),
        lambda: services.user_password_link(user_id=boss.pk, actor=manager),
    ):
        with pytest.raises(UserError, match="superuser"):
            change()


def test_deactivated_people_can_no_longer_sign_in_nor_use_tokens(manager, reviewer, client):
    made = services.token_create(user=reviewer, name="script", expires_at=None)

    services.user_set_active(user_id=reviewer.pk, active=False, actor=manager)

    credentials = {"username": reviewer.username, "password": "correct horse battery"}
    assert client.post("/accounts/login/", credentials).status_code == 200  # the form again
    assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Token {made.key}").status_code == 401
    services.user_set_active(user_id=reviewer.pk, active=True, actor=manager)
    assert client.post("/accounts/login/", credentials).status_code == 302
    assert actions()[-2:] == ["user.active", "user.active"]


def test_unknown_people_are_not_found(manager):
    with pytest.raises(services.PersonNotFound):
        services.user_set_active(user_id=10**9, active=False, actor=manager)


def test_teams_are_groups_other_than_the_roles(manager, reviewer, make_user):
    team = services.team_create(name="  Medical   reviewers ", actor=manager)
    assert team.name == "Medical reviewers"
    for taken in ("medical REVIEWERS", "reviewers", "Manager", "", "x" * 151):
        with pytest.raises(UserError):
            services.team_create(name=taken, actor=manager)
    with pytest.raises(services.TeamNotFound):
        services.team_set_members(team_id=Group.objects.get(name=Role.REVIEWER).pk, usernames=[], actor=manager)

    other = make_user("ola")
    assert services.team_set_members(team_id=team.pk, usernames=["ola", reviewer.username], actor=manager) == [
        "ola",
        reviewer.username,
    ]
    assert set(team.user_set.all()) == {other, reviewer}
    with pytest.raises(UserError, match="nobody-here"):
        services.team_set_members(team_id=team.pk, usernames=["nobody-here"], actor=manager)
    assert services.team_delete(team_id=team.pk, actor=manager) == "Medical reviewers"
    assert not Group.objects.filter(name="Medical reviewers").exists()
    assert actions() == ["team.create", "team.members", "team.delete"]
