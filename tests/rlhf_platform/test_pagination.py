"""Every list of the API comes in pages: by page number for the short lists (projects, campaigns),
by cursor, newest first, for those that grow without bound; page parameters are honoured."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from labeling.services.campaigns import project_create
from tests.labeling.factories import make_campaign
from training.models import ModelArtifact

pytestmark = pytest.mark.django_db


def test_projects_come_by_page_number_with_a_count(manager, manager_api):
    for name in ("Alpha", "Beta", "Gamma"):
        project_create(name=name, created_by=manager)

    first = manager_api.get("/api/projects/", {"page_size": 2}).json()
    second = manager_api.get("/api/projects/", {"page_size": 2, "page": 2}).json()

    assert first["count"] == 3
    assert [project["name"] for project in first["results"]] == ["Alpha", "Beta"]
    assert first["next"].endswith("page=2&page_size=2")
    assert [project["name"] for project in second["results"]] == ["Gamma"]
    assert second["next"] is None


def test_a_page_beyond_the_last_is_a_json_404(manager, manager_api):
    project_create(name="Alpha", created_by=manager)

    response = manager_api.get("/api/projects/", {"page": 9})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


def test_a_reviewer_sees_their_campaigns_in_pages_too(manager, reviewer):
    project = project_create(name="Alpha", created_by=manager)
    for name in ("One", "Two", "Three"):
        make_campaign(manager=manager, reviewers=[reviewer], project=project, name=name)
    client = APIClient()
    client.force_authenticate(reviewer)

    body = client.get("/api/campaigns/", {"page_size": 2}).json()

    assert body["count"] == 3
    assert [campaign["name"] for campaign in body["results"]] == ["One", "Three"]
    assert set(body["results"][0]) == {"id", "slug", "name", "question_schema", "guidelines_html"}


def test_models_come_newest_first_by_cursor_and_every_model_once(manager, manager_api):
    made = [ModelArtifact.objects.create(name=f"m{i}", path=f"/models/m{i}", created_by=manager) for i in range(5)]

    seen, url, pages = [], "/api/training/models/?page_size=2", 0
    while url:
        body = manager_api.get(url).json()
        assert "count" not in body  # a cursor page does not count the whole table
        seen += [model["name"] for model in body["results"]]
        url, pages = body["next"], pages + 1
        if pages == 1:
            ModelArtifact.objects.create(name="added meanwhile", path="/models/new", created_by=manager)

    assert pages == 3
    assert seen == [model.name for model in reversed(made)]


def test_a_bad_cursor_is_a_json_404(manager_api):
    response = manager_api.get("/api/training/runs/", {"cursor": "not-a-cursor"})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


@pytest.mark.parametrize(
    "path",
    ["/api/datasets/", "/api/training/models/", "/api/training/rounds/", "/api/training/runs/",
     "/api/training/generation-jobs/", "/api/projects/", "/api/campaigns/"],
)  # fmt: skip
def test_every_list_is_a_page(manager_api, path):
    body = manager_api.get(path).json()

    assert body["results"] == []
    assert body["next"] is None and body["previous"] is None
