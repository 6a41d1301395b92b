"""Demo data for `make demo`: a project with a pairwise and a ranking campaign, ready to review."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from labeling.models import Campaign, CampaignStatus, Project
from labeling.services.campaigns import campaign_create, campaign_set_status, project_create
from labeling.services.imports import tasks_import_file
from rlhf_platform.roles import Role

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
DEMO_PROJECT_SLUG = "demo-assistant"
DEMO_CAMPAIGNS = (
    {
        "slug": "demo-pairwise",
        "name": "Which answer is better?",
        "file": "pairwise_tasks.jsonl",
        "overlap": 2,
        "gold_rate": 0.1,
        "question_schema": {
            "questions": [
                {"id": "preference", "type": "pairwise", "allow_both_bad": True},
                {"id": "flags", "type": "flags"},
                {"id": "rationale", "type": "text", "label": "Why?"},
            ]
        },
    },
    {
        "slug": "demo-ranking",
        "name": "Rank four answers",
        "file": "ranking_tasks.jsonl",
        "overlap": 2,
        "gold_rate": 0.0,
        "question_schema": {
            "questions": [
                {"id": "ranking", "type": "ranking", "allow_ties": True},
                {
                    "id": "quality",
                    "type": "likert",
                    "aspects": ["helpfulness", "honesty"],
                    "scale": {"min": 1, "max": 5, "labels": {"1": "Poor", "5": "Excellent"}},
                    "required": False,
                },
                {"id": "rewrite", "type": "rewrite", "label": "Improve the best answer"},
            ]
        },
    },
)


@transaction.atomic
def demo_data_ensure(*, manager_username: str = "manager") -> list[Campaign]:
    """Create the demo project and campaigns if missing; the demo reviewers join both pools."""
    manager = get_user_model().objects.get(username=manager_username)
    project = Project.objects.filter(slug=DEMO_PROJECT_SLUG).first() or project_create(
        name="Demo: assistant quality", slug=DEMO_PROJECT_SLUG, created_by=manager
    )
    reviewers = list(get_user_model().objects.filter(groups__name=Role.REVIEWER, is_active=True))
    guidelines = (DEMO_DIR / "guidelines.md").read_text()
    campaigns = []
    for spec in DEMO_CAMPAIGNS:
        campaign = Campaign.objects.filter(slug=spec["slug"]).first()
        if campaign is None:
            campaign = campaign_create(
                project=project,
                created_by=manager,
                slug=spec["slug"],
                name=spec["name"],
                question_schema=spec["question_schema"],
                guidelines=guidelines,
                overlap=spec["overlap"],
                gold_rate=spec["gold_rate"],
            )
            tasks_import_file(campaign=campaign, path=DEMO_DIR / spec["file"])
            campaign = campaign_set_status(campaign=campaign, status=CampaignStatus.ACTIVE)
        campaign.reviewers.add(*reviewers)
        campaigns.append(campaign)
    return campaigns
