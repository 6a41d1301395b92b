"""Lists on the managers' pages come in numbered pages; each list of a page pages on its own."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from labeling.services.campaigns import project_create
from rlhf_platform.pagination import list_page
from tests.labeling.factories import make_campaign
from training.models import ModelArtifact

pytestmark = pytest.mark.django_db


def test_the_models_page_shows_twenty_models_a_page(manager, manager_client):
    for i in range(25):
        ModelArtifact.objects.create(name=f"model-{i:02d}", path=f"/models/{i}", created_by=manager)

    first = manager_client.get("/training/models/").content.decode()
    second = manager_client.get("/training/models/?page=2").content.decode()

    assert "model-24" in first and "model-05" in first and "model-04" not in first
    assert "Page 1 of 2 · 1\u201320 of 25 models" in first
    assert "model-04" in second and "model-00" in second and "model-05" not in second
    assert 'href="?page=1" rel="prev"' in second


def test_the_dashboard_pages_projects_with_their_campaigns(manager, manager_client):
    projects = [project_create(name=f"Project {i:02d}", created_by=manager) for i in range(22)]
    make_campaign(manager=manager, project=projects[21], name="Last project's campaign")

    first = manager_client.get("/manage/").content.decode()
    second = manager_client.get("/manage/?page=2").content.decode()

    assert "Project 19" in first and "Project 20" not in first
    assert "Project 21" in second and "Last project&#x27;s campaign" in second


def test_a_page_link_keeps_the_other_lists_pages():
    request = RequestFactory().get("/training/", {"rounds": "2", "jobs": "3"})

    listing = list_page(request, list(range(120)), param="jobs")

    assert listing.page.number == 3
    assert listing.previous_query == "rounds=2&jobs=2"
    assert listing.next_query is None
    assert list(listing) == list(range(100, 120))


def test_an_odd_page_number_shows_a_page_not_an_error():
    request = RequestFactory().get("/training/", {"page": "abc"})

    assert list_page(request, list(range(10)), per_page=5).page.number == 1
