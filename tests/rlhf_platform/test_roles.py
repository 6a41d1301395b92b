import pytest
from django.contrib.auth.models import AnonymousUser, Group

from rlhf_platform.roles import Role, user_is_manager, user_is_reviewer, user_roles


@pytest.mark.django_db
def test_it_creates_both_role_groups_in_migrations():
    assert set(Group.objects.values_list("name", flat=True)) >= {"reviewers", "managers"}


def test_it_gives_managers_and_reviewers_their_roles(manager, reviewer):
    assert user_roles(manager) == [Role.MANAGER]
    assert user_roles(reviewer) == [Role.REVIEWER]


def test_it_counts_superusers_as_managers(make_user):
    admin = make_user("root", is_superuser=True, is_staff=True)
    assert user_is_manager(admin)
    assert not user_is_reviewer(admin)


def test_it_gives_no_role_to_plain_inactive_or_anonymous_users(make_user):
    assert user_roles(make_user("plain")) == []
    assert user_roles(make_user("gone", role=Role.MANAGER, is_active=False)) == []
    assert user_roles(AnonymousUser()) == []


def test_it_allows_both_roles_at_once(make_user):
    both = make_user("both", role=Role.REVIEWER)
    both.groups.add(Group.objects.get(name=Role.MANAGER))
    assert user_roles(both) == [Role.MANAGER, Role.REVIEWER]
