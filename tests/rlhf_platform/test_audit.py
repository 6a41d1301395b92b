"""The audit log: managers' actions recorded by the services that make them (who, when, what,
before/after), nothing for an action that was refused, and a page and an endpoint to browse and
filter it, for managers only."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from rest_framework.test import APIClient

from labeling.models import CampaignStatus
from labeling.services.campaigns import project_create
from rlhf_platform.audit import Action
from rlhf_platform.roles import Role
from tests.labeling.factories import make_campaign, pairwise_rows
from training.models import ModelArtifact, Round, Stage, TrainingRun

pytestmark = pytest.mark.django_db


def entries(action: Action) -> list[LogEntry]:
    return list(LogEntry.objects.filter(additional_data__action=action.value).order_by("id"))


def test_a_status_change_is_recorded_with_who_and_before_after(manager, manager_api):
    campaign = make_campaign(manager=manager, tasks=pairwise_rows(2), status=CampaignStatus.DRAFT)

    manager_api.post(f"/api/campaigns/{campaign.pk}/status/", {"status": "active"}, format="json")

    [entry] = entries(Action.CAMPAIGN_STATUS)
    assert entry.actor == manager
    assert entry.changes == {"status": ["draft", "active"]}
    assert (entry.content_type.model, entry.object_id, entry.object_repr) == ("campaign", campaign.pk, str(campaign))


def test_pool_and_question_changes_are_recorded(manager, manager_client, make_user, manager_api):
    make_user("ada", role=Role.REVIEWER)
    make_user("bob", role=Role.REVIEWER)
    campaign = make_campaign(manager=manager, status=CampaignStatus.DRAFT)
    schema = {"questions": [{"id": "overall", "type": "likert", "scale": {"min": 1, "max": 5}}]}

    manager_client.post(f"/manage/campaigns/{campaign.slug}/reviewers/", {"reviewers": ["ada", "bob"]})
    manager_api.patch(f"/api/campaigns/{campaign.pk}/", {"question_schema": schema, "overlap": 2}, format="json")

    [pool] = entries(Action.CAMPAIGN_POOL)
    assert pool.actor == manager and pool.changes == {"reviewers": [[], ["ada", "bob"]]}
    [update] = entries(Action.CAMPAIGN_UPDATE)
    assert update.changes["overlap"] == [3, 2]
    assert update.changes["question_schema"][1]["questions"][0]["id"] == "overall"

    page = manager_client.get("/manage/audit/").content.decode()
    assert "[] → [&quot;ada&quot;, &quot;bob&quot;]" in page.replace('<span class="before">', "").replace(
        '</span> → <span class="after">', " → "
    )  # JSON, not Python's ['ada', 'bob']
    assert "&#x27;ada&#x27;" not in page


def test_a_refused_action_leaves_no_entry(manager, manager_api):
    campaign = make_campaign(manager=manager, status=CampaignStatus.DRAFT)  # no tasks: cannot start

    response = manager_api.post(f"/api/campaigns/{campaign.pk}/status/", {"status": "active"}, format="json")
    refused_delete = manager_api.delete(f"/api/projects/{campaign.project.pk}/")  # it has a campaign

    assert (response.status_code, refused_delete.status_code) == (409, 409)
    assert entries(Action.CAMPAIGN_STATUS) == [] and entries(Action.PROJECT_DELETE) == []


def test_training_actions_are_recorded(manager, manager_api):
    base = ModelArtifact.objects.create(name="base", path="/models/base", created_by=manager)
    training_round = Round.objects.create(name="r", preset=Round.Preset.SINGLE, base_model=base)
    run = TrainingRun.objects.create(round=training_round, stage=Stage.SFT, input_model=base)

    manager_api.post(f"/api/training/runs/{run.pk}/cancel/")
    manager_api.post(f"/api/training/runs/{run.pk}/resume/")

    [cancel] = entries(Action.RUN_CANCEL)
    [resume] = entries(Action.RUN_RESUME)
    assert cancel.actor == resume.actor == manager
    assert cancel.changes == {"status": ["queued", "cancelled"]}
    assert resume.changes == {"status": ["cancelled", "queued"]}


def test_the_page_lists_and_filters_entries_for_managers_only(manager, make_user, manager_client, reviewer_client):
    other = make_user("otto", role=Role.MANAGER)
    project_create(name="Mine", created_by=manager)
    project_create(name="Otto's", created_by=other)

    everything = manager_client.get("/manage/audit/").content.decode()
    filtered = manager_client.get("/manage/audit/", {"actor": "otto", "action": "project.create"}).content.decode()

    assert "Mine" in everything and "Otto&#x27;s" in everything and "Project created" in everything
    assert "Otto&#x27;s" in filtered and "Mine" not in filtered
    assert reviewer_client.get("/manage/audit/").status_code == 403


def test_a_bad_filter_is_a_field_error(manager_client, manager_api):
    page = manager_client.get("/manage/audit/", {"since": "2026-12-05", "until": "2026-12-01"})
    api = manager_api.get("/api/audit/", {"since": "yesterday"})

    assert page.status_code == 400 and "Must not be before" in page.content.decode()
    assert api.status_code == 400 and api.json()["errors"] == {"since": "Enter a valid date."}


def test_the_api_pages_entries_newest_first(manager, manager_api, reviewer):
    for name in ("First", "Second", "Third"):
        project_create(name=name, created_by=manager)

    body = manager_api.get("/api/audit/", {"action": "project.create", "page_size": 2}).json()
    client = APIClient()
    client.force_authenticate(reviewer)

    assert [row["target"] for row in body["results"]] == ["Third", "Second"]
    assert body["results"][0]["actor"] == manager.username
    assert body["results"][0]["action_label"] == "Project created"
    assert manager_api.get(body["next"]).json()["results"][0]["target"] == "First"
    assert client.get("/api/audit/").status_code == 403


def test_token_creation_and_revocation_are_recorded(manager, reviewer, manager_api):
    created = APIClient().post(
        "/api/auth/token/", {"username": reviewer.username, "password": "correct horse battery"}, format="json"
    )
    token_id = created.json()["id"]

    manager_api.post(f"/api/auth/tokens/{token_id}/revoke/")

    [create] = entries(Action.TOKEN_CREATE)
    [revoke] = entries(Action.TOKEN_REVOKE)
    assert (create.actor, create.object_id, create.additional_data["owner"]) == (reviewer, token_id, reviewer.username)
    assert (revoke.actor, revoke.object_id) == (manager, token_id)
    assert created.json()["token"] not in str(create.serialized_data) + create.object_repr + str(create.additional_data)
