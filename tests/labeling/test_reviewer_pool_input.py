"""A reviewer pool names people by username, from a form or the API: a name no user can have (a NUL
character, which PostgreSQL refuses in text) is a clear error that changes nothing, never a 500."""

from __future__ import annotations

import pytest

from labeling.errors import LabelingError
from labeling.services.campaigns import campaign_set_reviewers
from rlhf_platform.roles import Role
from tests.labeling.factories import make_campaign


@pytest.mark.django_db
def test_it_refuses_a_username_with_a_nul_character(manager, make_user):
    ada = make_user("ada", role=Role.REVIEWER)
    campaign = make_campaign(manager=manager, reviewers=[ada])
    with pytest.raises(LabelingError) as refused:
        campaign_set_reviewers(campaign=campaign, usernames=["ada", "bob\x00"])
    assert refused.value.errors == {"reviewers": "A username cannot contain a NUL character."}
    assert list(campaign.reviewers.all()) == [ada]


@pytest.mark.django_db
def test_the_pool_page_answers_with_the_error(manager, manager_client, make_user):
    ada = make_user("ada", role=Role.REVIEWER)
    campaign = make_campaign(manager=manager, reviewers=[ada])
    response = manager_client.post(
        f"/manage/campaigns/{campaign.slug}/reviewers/", {"reviewers": ["ada", "\x00"]}, follow=True
    )
    assert response.status_code == 200
    assert "A username cannot contain a NUL character." in response.content.decode()
    assert list(campaign.reviewers.all()) == [ada]
