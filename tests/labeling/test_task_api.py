"""The task browser through the API: list, one task, re-queue; managers only."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from labeling.models import Task
from tests.labeling.task_world import build_task_world


@pytest.fixture
def world(manager, make_user):
    return build_task_world(manager, make_user)


def base(world) -> str:
    return f"/api/campaigns/{world.campaign.pk}/tasks/"


def test_it_lists_with_the_filters_sort_and_pages(world, manager_api):
    body = manager_api.get(base(world), {"gold": "no", "sort": "-judgements", "page_size": 2, "page": 2}).json()
    assert (body["count"], body["pages"], body["page"], body["page_size"]) == (5, 3, 2, 2)
    assert [row["external_id"] for row in body["results"]] == ["agree", "skipped"]
    row = body["results"][0]
    assert row["votes_wanted"] == 3 and row["agreement"] == 1.0 and row["excerpt"] == "Short?"
    split = manager_api.get(base(world), {"agreement_max": 0.9, "meta": "source=web"}).json()["results"]
    assert [row["external_id"] for row in split] == ["split"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"agreement_min": "x"}, "agreement_min"),
        ({"meta": "==="}, "meta"),
        ({"page": 5}, "page"),
        ({"prompt_min": 9, "prompt_max": 1}, "prompt_max"),
    ],
)
def test_bad_input_answers_400_with_field_errors(world, manager_api, query, field):
    response = manager_api.get(base(world), query)
    assert response.status_code == 400
    body = response.json()
    assert list(body["errors"]) == [field] and body["detail"]


def test_one_task_has_its_responses_texts_and_every_judgement(world, manager_api):
    task = world.tasks["flagged"]
    body = manager_api.get(f"{base(world)}{task.pk}/").json()
    assert [(r["number"], r["text"]) for r in body["responses"]] == [(1, "A2"), (2, "B2")]
    assert {j["reviewer"] for j in body["judgements"]} == {r.username for r in world.reviewers}
    first = next(j for j in body["judgements"] if j["reviewer"] == "browser-judge0")
    assert first["described"]["Which is better?"] == "Response 1, much better"
    assert first["answers"]["preference"]["winner"] == body["responses"][0]["id"]
    assert sorted(first["shown_order"]) == [1, 2] and first["time_spent_ms"] == 1500
    assert (body["agreement"], body["flag_count"], body["votes_wanted"]) == (1.0, 1, 3)
    other_campaign = manager_api.get(f"/api/campaigns/{world.campaign.pk + 1}/tasks/{task.pk}/")
    assert other_campaign.status_code == 404
    assert manager_api.get(f"{base(world)}{10**9}/").status_code == 404


def test_requeue(world, manager_api):
    task = world.tasks["agree"]
    response = manager_api.post(f"{base(world)}{task.pk}/requeue/", {"votes": 2}, format="json")
    assert response.status_code == 200
    assert response.json() == {"id": task.pk, "judgement_count": 3, "extra_votes": 2, "votes_wanted": 5}
    bad = manager_api.post(f"{base(world)}{task.pk}/requeue/", {"votes": 0}, format="json")
    assert bad.status_code == 400 and "votes" in bad.json()["errors"]
    gold = manager_api.post(f"{base(world)}{world.tasks['gold'].pk}/requeue/", {"votes": 1}, format="json")
    assert gold.status_code == 409
    assert Task.objects.get(pk=task.pk).extra_votes == 2


def test_reviewers_get_403(world):
    api = APIClient()
    api.force_authenticate(world.reviewers[0])
    task = world.tasks["agree"]
    assert api.get(base(world)).status_code == 403
    assert api.get(f"{base(world)}{task.pk}/").status_code == 403
    assert api.post(f"{base(world)}{task.pk}/requeue/", {"votes": 1}, format="json").status_code == 403
