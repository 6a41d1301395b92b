"""Small builders for labeling tests, going through the services where a user would."""

from __future__ import annotations

import io
import json
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from labeling.models import Campaign, CampaignStatus, Project
from labeling.services.campaigns import campaign_create, project_create
from labeling.services.imports import ImportResult, tasks_import

PAIRWISE_SCHEMA = {"questions": [{"id": "preference", "type": "pairwise", "allow_both_bad": True}]}
RANKING_SCHEMA = {
    "questions": [
        {"id": "rank", "type": "ranking", "allow_ties": True},
        {"id": "why", "type": "text"},
    ]
}


def make_campaign(
    *,
    manager: AbstractBaseUser,
    reviewers: list[AbstractBaseUser] = (),
    schema: dict[str, Any] | None = None,
    tasks: list[dict[str, Any]] | None = None,
    status: str = CampaignStatus.ACTIVE,
    project: Project | None = None,
    **fields: Any,
) -> Campaign:
    project = project or project_create(name="Assistant quality", created_by=manager)
    campaign = campaign_create(
        project=project,
        created_by=manager,
        name=fields.pop("name", "Helpfulness round 1"),
        question_schema=schema or PAIRWISE_SCHEMA,
        **fields,
    )
    if tasks:
        import_rows(campaign, tasks)
    campaign.reviewers.set(reviewers)
    if status != CampaignStatus.DRAFT:
        Campaign.objects.filter(pk=campaign.pk).update(status=status)
        campaign.refresh_from_db()
    return campaign


def pairwise_rows(count: int, *, start: int = 0, gold_every: int = 0) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, start + count):
        row: dict[str, Any] = {"id": f"t{i}", "prompt": f"Question {i}?", "responses": [f"A{i}", f"B{i}"]}
        if gold_every and i % gold_every == 0:
            row["gold"] = {"preferred": 0}
        rows.append(row)
    return rows


def jsonl(rows: list[Any]) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def import_rows(campaign: Campaign, rows: list[Any]) -> ImportResult:
    data = jsonl(rows)
    return tasks_import(campaign=campaign, stream=io.BytesIO(data), file_format="jsonl", size=len(data))


def claim_next(*, reviewer: AbstractBaseUser, campaign: Campaign, rng=None):
    """The assignment of the next claimed task, or None."""
    from labeling.services.assignment import assignment_claim_next

    claim = assignment_claim_next(reviewer=reviewer, campaign=campaign, rng=rng)
    return None if claim is None else claim.assignment


def run_data_jobs() -> list:
    """Run every queued import and dataset build, as the worker's data loop would; returns them."""
    from labeling.services.data_jobs import data_job_run_next

    jobs = []
    while (job := data_job_run_next(worker="test", heartbeat_s=60)) is not None:
        jobs.append(job)
    return jobs
