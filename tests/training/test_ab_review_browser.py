"""In a real Chromium: the generation job page starts the A/B review in one click, then follows the
new model's win rate as judgements arrive, without a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling.models import Campaign
from rlhf_platform.roles import Role
from tests.labeling.simulation import simulate_pairwise_reviews
from tests.training.test_ab_review import finished_job
from training.models import ModelArtifact

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_job_page_starts_the_review_and_follows_the_win_rate(
    tiny_model, manager, make_user, signed_in_page, live_server
):
    from labeling.services.campaigns import project_create

    previous = ModelArtifact.objects.create(name="tiny-previous", path=tiny_model.path)
    reviewers = [make_user(f"browser-reviewer-{index}", role=Role.REVIEWER) for index in range(2)]
    project = project_create(name="Browser A/B", created_by=manager)
    prompts = [f"Prompt {index}" for index in range(30)]
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, project=project, prompts=prompts)

    page = signed_in_page(manager.get_username())
    page.goto(f"{live_server.url}/training/generation/{job.pk}/")
    for reviewer in reviewers:
        page.check(f"input[value='{reviewer.get_username()}']")
    page.click("button:has-text('Start the A/B review')")
    expect(page.locator(".messages")).to_contain_text("is active: its 2 reviewers can start")
    expect(page.locator(".ab-headline")).to_contain_text("no judgements yet")
    page.evaluate("window.stillTheSamePage = true")

    campaign = Campaign.objects.get(pk=job.campaign_id)
    made = simulate_pairwise_reviews(
        campaign, reviewers, first_wins=lambda first, _second: 0.8 if first == tiny_model.name else 0.2, seed=9
    )
    assert made == 60  # overlap 3, two reviewers: each task answered by both
    expect(page.locator("[data-field=n]")).to_have_text("60", timeout=15_000)
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.locator("[data-field=win-rate]").inner_text().endswith("%")
    assert page.js_errors == []
