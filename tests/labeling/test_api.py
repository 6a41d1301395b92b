import random
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from labeling.models import CampaignStatus, Judgement, Task
from labeling.services.campaigns import campaign_set_status
from rlhf_platform.roles import Role
from tests.labeling.factories import PAIRWISE_SCHEMA, jsonl, make_campaign, pairwise_rows, run_data_jobs


@pytest.fixture
def members(make_user):
    return [make_user(f"member{i}", role=Role.REVIEWER) for i in range(2)]


@pytest.fixture
def outsider(make_user):
    return make_user("outsider", role=Role.REVIEWER)


@pytest.fixture
def campaign(manager, members):
    return make_campaign(manager=manager, reviewers=members, tasks=pairwise_rows(3, gold_every=3), overlap=2)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def answer(payload, strength=1):
    return {
        "answers": {"preference": {"winner": payload["responses"][0]["id"], "strength": strength}},
        "client_submission_id": str(uuid.uuid4()),
        "time_spent_ms": 2500,
    }


def test_a_submit_can_hold_and_return_the_next_task(campaign, members):
    api = client_for(members[0])
    payload = api.post(f"/api/campaigns/{campaign.pk}/next/").json()
    held = [payload["assignment_id"]]
    while True:
        body = {**answer(payload), "claim_next": True}
        response = api.post(f"/api/assignments/{payload['assignment_id']}/submit/", body, format="json")
        assert response.status_code == 201
        retried = api.post(f"/api/assignments/{payload['assignment_id']}/submit/", body, format="json")
        assert retried.status_code == 200 and retried.json()["next"] is None  # a retry holds nothing more
        payload = response.json()["next"]
        if payload is None:
            break
        assert set(payload) == {"assignment_id", "lease_expires_at", "prompt", "responses", "previous_answers"}
        held.append(payload["assignment_id"])
    assert len(held) == len(set(held)) == Task.objects.filter(campaign=campaign, is_gold=False).count()
    assert Judgement.objects.filter(reviewer=members[0]).count() == len(held)
    assert not api.get(f"/api/campaigns/{campaign.pk}/held/").json()
    assert api.post(f"/api/campaigns/{campaign.pk}/next/").status_code == 204


def test_a_submit_is_saved_when_no_next_task_can_be_held(campaign, members):
    api = client_for(members[0])
    payload = api.post(f"/api/campaigns/{campaign.pk}/next/").json()
    campaign_set_status(campaign=campaign, status=CampaignStatus.PAUSED)
    body = {**answer(payload), "claim_next": True}
    response = api.post(f"/api/assignments/{payload['assignment_id']}/submit/", body, format="json")
    assert response.status_code == 201 and response.json()["next"] is None
    assert Judgement.objects.filter(reviewer=members[0]).count() == 1
    # Without claim_next the answer has no "next" at all, as before.
    body.pop("claim_next")
    assert "next" not in api.post(f"/api/assignments/{payload['assignment_id']}/submit/", body, format="json").json()


def test_it_runs_the_reviewer_loop_next_submit_undo_skip(campaign, members):
    api = client_for(members[0])
    first = api.post(f"/api/campaigns/{campaign.pk}/next/")
    assert first.status_code == 200
    payload = first.json()
    assert [m["role"] for m in payload["prompt"]] == ["user"]
    assert len(payload["responses"]) == 2

    body = answer(payload)
    created = api.post(f"/api/assignments/{payload['assignment_id']}/submit/", body, format="json")
    assert created.status_code == 201 and created.json()["created"] is True
    retried = api.post(f"/api/assignments/{payload['assignment_id']}/submit/", body, format="json")
    assert retried.status_code == 200 and retried.json() == {**created.json(), "created": False}

    undone = api.post(f"/api/campaigns/{campaign.pk}/undo/")
    assert undone.status_code == 200
    assert undone.json()["assignment_id"] == payload["assignment_id"]
    assert undone.json()["previous_answers"]["preference"]["winner"] == payload["responses"][0]["id"]
    assert api.get(f"/api/campaigns/{campaign.pk}/held/").json()[0]["assignment_id"] == payload["assignment_id"]

    second = api.post(f"/api/campaigns/{campaign.pk}/next/").json()
    skipped = api.post(f"/api/assignments/{second['assignment_id']}/skip/", {"reason": "Not my language"})
    assert skipped.status_code == 204
    progress = api.get(f"/api/campaigns/{campaign.pk}/progress/").json()
    assert progress == {"done_today": 0, "left_in_campaign": 4}


def test_it_answers_204_when_nothing_is_left(manager, members):
    campaign = make_campaign(manager=manager, reviewers=members, tasks=pairwise_rows(1), overlap=1)
    api = client_for(members[0])
    assert api.post(f"/api/campaigns/{campaign.pk}/next/").status_code == 200
    assert api.post(f"/api/campaigns/{campaign.pk}/next/").status_code == 204


def test_it_returns_field_errors_for_bad_answers(campaign, members):
    api = client_for(members[0])
    payload = api.post(f"/api/campaigns/{campaign.pk}/next/").json()
    response = api.post(
        f"/api/assignments/{payload['assignment_id']}/submit/",
        {
            "answers": {"preference": {"winner": 1, "strength": 9}},
            "client_submission_id": "abcdefgh-1",
            "time_spent_ms": 1,
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Some answers need fixing.",
        "errors": {"preference.winner": "must be the id of one of this task's responses, or null for a tie"},
    }
    missing = api.post(f"/api/assignments/{payload['assignment_id']}/submit/", {}, format="json")
    assert missing.status_code == 400
    assert set(missing.json()["errors"]) == {"answers", "client_submission_id", "time_spent_ms"}
    assert Judgement.objects.count() == 0


def test_it_hides_campaigns_from_reviewers_outside_the_pool(campaign, outsider):
    api = client_for(outsider)
    for url in ("next/", "held/", "progress/", "undo/", ""):
        method = api.get if url in ("held/", "progress/", "") else api.post
        response = method(f"/api/campaigns/{campaign.pk}/{url}")
        assert response.status_code == 404, url
        assert response.json() == {"detail": "No such campaign."}
    assert api.get("/api/campaigns/").json()["results"] == []


def test_it_never_shows_a_reviewer_another_reviewers_assignment(campaign, members):
    payload = client_for(members[0]).post(f"/api/campaigns/{campaign.pk}/next/").json()
    other = client_for(members[1])
    assert (
        other.post(f"/api/assignments/{payload['assignment_id']}/submit/", answer(payload), format="json").status_code
        == 404
    )
    assert other.post(f"/api/assignments/{payload['assignment_id']}/skip/", {"reason": "x"}).status_code == 404
    assert payload["assignment_id"] not in [
        p["assignment_id"] for p in other.get(f"/api/campaigns/{campaign.pk}/held/").json()
    ]


def test_it_never_sends_gold_answers_or_model_details_to_reviewers(manager, members, monkeypatch):
    monkeypatch.setattr("labeling.services.assignment._random", random.Random(7))
    tasks = [
        {"id": f"t{i}", "prompt": "Q", "responses": [{"text": "a", "model": "model-x"}, "b"], "meta": {"m": 1},
         **({"gold": {"preferred": 0}} if i < 2 else {})}
        for i in range(6)
    ]  # fmt: skip
    campaign = make_campaign(manager=manager, reviewers=members, tasks=tasks, gold_rate=0.5)
    api = client_for(members[0])
    seen = []
    while (response := api.post(f"/api/campaigns/{campaign.pk}/next/")).status_code == 200:
        seen.append(response.content.decode())
    campaign_view = api.get(f"/api/campaigns/{campaign.pk}/").json()
    assert set(campaign_view) == {"id", "slug", "name", "question_schema", "guidelines_html"}
    assert len(seen) == 6
    assert not any(word in s for s in seen for word in ("gold", "preferred", "model-x", "meta", '"t0"'))
    assert Task.objects.filter(is_gold=True, assignments__reviewer=members[0]).count() == 2


def test_it_keeps_management_endpoints_for_managers(campaign, members):
    api = client_for(members[0])
    assert api.post("/api/projects/", {"name": "x"}).status_code == 403
    assert api.get("/api/projects/").status_code == 403
    assert api.post("/api/campaigns/", {}).status_code == 403
    assert api.patch(f"/api/campaigns/{campaign.pk}/", {"name": "x"}).status_code == 403
    assert api.get(f"/api/campaigns/{campaign.pk}/stats/").status_code == 403
    assert api.post(f"/api/campaigns/{campaign.pk}/status/", {"status": "closed"}).status_code == 403
    assert api.put(f"/api/campaigns/{campaign.pk}/reviewers/", {"reviewers": []}, format="json").status_code == 403
    upload = SimpleUploadedFile("t.jsonl", jsonl(pairwise_rows(1)))
    assert api.post(f"/api/campaigns/{campaign.pk}/import/", {"file": upload}, format="multipart").status_code == 403


def test_it_keeps_review_endpoints_for_reviewers(campaign, manager):
    api = client_for(manager)
    assert api.post(f"/api/campaigns/{campaign.pk}/next/").status_code == 403


@pytest.mark.django_db
def test_it_refuses_anonymous_callers():
    assert APIClient().get("/api/campaigns/").status_code == 401


def test_it_lets_managers_set_up_a_campaign_end_to_end(manager, members):
    api = client_for(manager)
    project = api.post("/api/projects/", {"name": "Chat quality"}).json()
    bad = api.post(
        "/api/campaigns/",
        {"project": project["id"], "name": "Round 1", "question_schema": {"questions": [{"id": "q", "type": "stars"}]}},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["errors"] == {
        "question_schema.questions[0].type": "must be one of pairwise, ranking, likert, text, rewrite, flags"
    }

    created = api.post(
        "/api/campaigns/",
        {"project": project["id"], "name": "Round 1", "question_schema": PAIRWISE_SCHEMA, "overlap": 2},
        format="json",
    )
    assert created.status_code == 201
    campaign_id = created.json()["id"]
    assert created.json()["status"] == CampaignStatus.DRAFT

    not_yet = api.post(f"/api/campaigns/{campaign_id}/status/", {"status": "active"})
    assert not_yet.status_code == 409 and "Import tasks" in not_yet.json()["detail"]

    bad_file = SimpleUploadedFile("t.jsonl", jsonl([*pairwise_rows(2), {"prompt": "q", "responses": ["a"]}]))
    queued = api.post(f"/api/campaigns/{campaign_id}/import/", {"file": bad_file}, format="multipart")
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    run_data_jobs()
    rejected = api.get(queued["Location"]).json()
    assert rejected["status"] == "failed"
    assert rejected["errors"] == {"line 3": "a task needs at least 2 responses to compare, got 1"}
    assert Task.objects.count() == 0

    good_file = SimpleUploadedFile("t.jsonl", jsonl(pairwise_rows(5)))
    queued = api.post(f"/api/campaigns/{campaign_id}/import/", {"file": good_file}, format="multipart")
    assert queued.status_code == 202
    run_data_jobs()
    imported = api.get(queued["Location"]).json()
    assert imported["status"] == "succeeded"
    assert imported["result"] == {"created": 5, "prompt_only": 0, "skipped_duplicates": 0, "rows": 5}

    pool = api.put(f"/api/campaigns/{campaign_id}/reviewers/", {"reviewers": ["member0", "member1"]}, format="json")
    assert pool.json() == {"reviewers": ["member0", "member1"]}
    bad_pool = api.put(f"/api/campaigns/{campaign_id}/reviewers/", {"reviewers": ["mia-manager"]}, format="json")
    assert bad_pool.status_code == 400
    assert api.post(f"/api/campaigns/{campaign_id}/status/", {"status": "active"}).json()["status"] == "active"

    reviewer_api = client_for(members[0])
    payload = reviewer_api.post(f"/api/campaigns/{campaign_id}/next/").json()
    reviewer_api.post(f"/api/assignments/{payload['assignment_id']}/submit/", answer(payload), format="json")
    stats = api.get(f"/api/campaigns/{campaign_id}/stats/").json()
    assert stats["judgements"] == 1 and stats["judgements_wanted"] == 10 and stats["judgements_left"] == 9
    assert stats["reviewers"][0]["reviewer"] == "member0" and stats["reviewers"][0]["judgements"] == 1
    assert sum(h["judgements"] for h in stats["per_hour"]) == 1

    locked = api.patch(
        f"/api/campaigns/{campaign_id}/",
        {"question_schema": {"questions": [{"id": "r", "type": "ranking"}]}},
        format="json",
    )
    assert locked.status_code == 409
    renamed = api.patch(f"/api/campaigns/{campaign_id}/", {"name": "Round one", "overlap": 3}, format="json")
    assert renamed.json()["name"] == "Round one" and renamed.json()["overlap"] == 3
    assert api.delete(f"/api/campaigns/{campaign_id}/").status_code == 409
    assert api.delete(f"/api/projects/{project['id']}/").status_code == 409


def test_it_keeps_page_addresses_out_of_slugs(manager):
    api = client_for(manager)
    project = api.post("/api/projects/", {"name": "P"}).json()
    reserved = api.post(
        "/api/campaigns/",
        {"project": project["id"], "name": "x", "slug": "new", "question_schema": PAIRWISE_SCHEMA},
        format="json",
    )
    assert reserved.status_code == 400 and "slug" in reserved.json()["errors"]
    named_new = api.post(
        "/api/campaigns/", {"project": project["id"], "name": "New", "question_schema": PAIRWISE_SCHEMA}, format="json"
    )
    assert named_new.json()["slug"] == "new-2"


def test_it_lets_managers_rename_and_delete_empty_projects(manager):
    api = client_for(manager)
    project = api.post("/api/projects/", {"name": "Draft"}).json()
    renamed = api.patch(f"/api/projects/{project['id']}/", {"name": "Chat v2", "description": "Second pass"})
    assert renamed.json()["name"] == "Chat v2" and renamed.json()["slug"] == "draft"
    assert api.patch(f"/api/projects/{project['id']}/", {"name": " "}).status_code == 400
    assert api.delete(f"/api/projects/{project['id']}/").status_code == 204
    assert api.get(f"/api/projects/{project['id']}/").status_code == 404


def test_it_deletes_a_draft_campaign_without_judgements(manager):
    campaign = make_campaign(manager=manager, tasks=pairwise_rows(2), status=CampaignStatus.DRAFT)
    api = client_for(manager)
    assert api.delete(f"/api/campaigns/{campaign.pk}/").status_code == 204
    assert Task.objects.count() == 0
