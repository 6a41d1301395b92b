"""`manage.py seed_demo`: the demo project, and its realistic campaign judged by simulated reviewers."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from labeling.models import Assignment, Campaign, CampaignStatus, Judgement, Response, Task
from labeling.selectors import campaign_quality
from labeling.services.assignment import assignment_claim_next
from labeling.services.datasets import dataset_build, dataset_params
from labeling.services.demo import REALISTIC_CAMPAIGN, SIMULATED_REVIEWERS, demo_data_ensure
from rlhf_platform.roles import Role
from rlhf_platform.services import demo_users_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def datasets_dir(settings, tmp_path):
    settings.DATASETS_DIR = tmp_path / "datasets"


@pytest.fixture
def seeded():
    demo_users_ensure(passwords={Role.MANAGER: "manager pass", Role.REVIEWER: "reviewer pass"})
    campaigns = demo_data_ensure()
    return {campaign.slug: campaign for campaign in campaigns}


def _counts() -> dict[str, int]:
    return {
        "campaigns": Campaign.objects.count(),
        "tasks": Task.objects.count(),
        "responses": Response.objects.count(),
        "assignments": Assignment.objects.count(),
        "judgements": Judgement.objects.count(),
        "users": get_user_model().objects.count(),
    }


# One seed costs about a second, so the checks of what it made share one test.
def test_it_seeds_a_judged_campaign_that_still_has_work_for_the_demo_reviewers(seeded):
    campaign = seeded[REALISTIC_CAMPAIGN.slug]
    assert set(seeded) == {"demo-pairwise", "demo-ranking", REALISTIC_CAMPAIGN.slug}
    assert campaign.status == CampaignStatus.ACTIVE
    tasks = Task.objects.filter(campaign=campaign)
    assert tasks.filter(is_gold=False).count() == REALISTIC_CAMPAIGN.regular_tasks
    assert tasks.filter(is_gold=True).count() == REALISTIC_CAMPAIGN.gold_tasks
    judgements = Judgement.objects.filter(task__campaign=campaign)
    assert judgements.filter(task__is_gold=True).exists()
    assert tasks.filter(is_gold=False, judgement_count__gte=campaign.overlap).count() >= 200
    assert tasks.filter(is_gold=False, judgement_count=0).count() >= 30

    simulated = get_user_model().objects.filter(username__in=[r.username for r in SIMULATED_REVIEWERS])
    assert len(simulated) == len(SIMULATED_REVIEWERS)
    for user in simulated:
        assert not user.has_usable_password()
        assert user.groups.filter(name=Role.REVIEWER).exists()
        assert judgements.filter(reviewer=user).exists()
    # The simulated team works only in its own campaign.
    assert not seeded["demo-pairwise"].reviewers.filter(pk__in=simulated).exists()
    # Spread over past days, for the agreement-over-time plot.
    assert judgements.dates("submitted_at", "day").count() >= REALISTIC_CAMPAIGN.days - 1

    for username in ("reviewer1", "reviewer2"):
        demo_reviewer = get_user_model().objects.get(username=username)
        for demo_campaign in seeded.values():
            assert demo_campaign.reviewers.filter(pk=demo_reviewer.pk).exists()
        assert assignment_claim_next(reviewer=demo_reviewer, campaign=campaign) is not None

    _check_quality_page_flags_the_careless_and_the_biased_reviewers(campaign)
    _check_a_dataset_build_has_hundreds_of_preference_rows(campaign)


def test_it_changes_nothing_when_run_again(seeded):
    before = _counts()
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert _counts() == before
    assert f"{REALISTIC_CAMPAIGN.slug}" in out.getvalue()


def _check_quality_page_flags_the_careless_and_the_biased_reviewers(campaign: Campaign) -> None:
    quality = campaign_quality(campaign=campaign)
    assert quality.agreement.outcome_alpha.value > 0.1
    assert len(quality.over_time) >= REALISTIC_CAMPAIGN.days - 1
    flags = {row["reviewer"]: row["flags"] for row in quality.reviewers}
    assert "too_fast" in flags["sim-careless"]
    assert "position_bias" in flags["sim-position-biased"]
    for careful in ("sim-careful-1", "sim-careful-2", "sim-careful-3"):
        assert flags[careful] == []

    client = Client()
    client.force_login(get_user_model().objects.get(username="manager"))
    page = client.get(f"/manage/campaigns/{campaign.slug}/quality/")
    assert page.status_code == 200
    assert "sim-position-biased" in page.content.decode()


def _check_a_dataset_build_has_hundreds_of_preference_rows(campaign: Campaign) -> None:
    manager = get_user_model().objects.get(username="manager")
    dataset, created = dataset_build(
        campaigns=[campaign],
        params=dataset_params(test_fraction=0.1),
        created_by=manager,
        exclude_flagged_reviewers=True,
    )
    assert created
    assert dataset.counts["rows"] >= 200
    assert dataset.path.is_file()
