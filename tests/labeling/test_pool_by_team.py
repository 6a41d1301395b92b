"""A campaign's reviewer pool takes a team's current reviewers in one go (a snapshot, not a link)."""

import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from labeling.errors import LabelingError
from labeling.services.campaigns import campaign_add_team
from rlhf_platform import services
from rlhf_platform.roles import Role
from tests.labeling.factories import claim_next, make_campaign, pairwise_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def team_world(manager, make_user):
    reviewers = [make_user(f"team-rev-{i}", role=Role.REVIEWER) for i in range(3)]
    outsider = make_user("team-no-role")
    gone = make_user("team-gone", role=Role.REVIEWER, is_active=False)
    team = services.team_create(name="Team A", actor=manager)
    names = [u.username for u in [*reviewers, outsider, gone]]
    services.team_set_members(team_id=team.pk, usernames=names, actor=manager)
    campaign = make_campaign(manager=manager, reviewers=[reviewers[0]], tasks=pairwise_rows(2))
    return {"team": team, "reviewers": reviewers, "campaign": campaign}


def test_adding_a_team_adds_its_current_active_reviewers_only(manager, team_world, make_user):
    campaign, team = team_world["campaign"], team_world["team"]

    added = campaign_add_team(campaign=campaign, team_id=team.pk, actor=manager)

    assert added == ["team-rev-1", "team-rev-2"]
    assert sorted(campaign.reviewers.values_list("username", flat=True)) == ["team-rev-0", "team-rev-1", "team-rev-2"]
    entry = LogEntry.objects.filter(additional_data__action="campaign.pool").get()
    assert entry.additional_data["team"] == "Team A"
    assert entry.changes["reviewers"] == [["team-rev-0"], ["team-rev-0", "team-rev-1", "team-rev-2"]]
    # A snapshot: who joins the team later is not in the pool, and adding again adds nothing.
    late = make_user("team-late", role=Role.REVIEWER)
    team.user_set.add(late)
    assert not campaign.reviewers.filter(pk=late.pk).exists()
    assert campaign_add_team(campaign=campaign, team_id=team.pk, actor=manager) == ["team-late"]
    assert campaign_add_team(campaign=campaign, team_id=team.pk, actor=manager) == []
    # The claim path sees the added reviewers like anyone in the pool.
    assert claim_next(reviewer=team_world["reviewers"][2], campaign=campaign) is not None


def test_a_role_group_or_unknown_team_is_refused(manager, team_world):
    from django.contrib.auth.models import Group

    for team_id in (Group.objects.get(name=Role.REVIEWER).pk, 10**9):
        with pytest.raises(LabelingError, match="No such team"):
            campaign_add_team(campaign=team_world["campaign"], team_id=team_id, actor=manager)
    assert team_world["campaign"].reviewers.count() == 1


def test_the_pool_page_says_what_adding_a_team_does(manager_client, team_world):
    campaign, team = team_world["campaign"], team_world["team"]
    page = manager_client.get(reverse("labeling:campaign-reviewers", kwargs={"slug": campaign.slug}))

    html = page.content.decode()
    assert "Team A: adds 2 of its 3 current reviewers (the others are in the pool)" in html
    assert "People who join the team later are not added" in html
    assert ">reviewers<" not in html and ">managers<" not in html  # the role groups are not teams

    url = reverse("labeling:campaign-reviewers-add-team", kwargs={"slug": campaign.slug})
    done = manager_client.post(url, {"team": team.pk}, follow=True)
    assert "Added 2 reviewers: team-rev-1, team-rev-2." in done.content.decode()
    assert "Team A: its 3 reviewers are in the pool already" in done.content.decode()
    refused = manager_client.post(url, {"team": "x"}, follow=True)
    assert "Choose a team." in refused.content.decode()
