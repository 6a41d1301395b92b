"""Every training endpoint is for managers: reviewers get 403, anonymous callers 401."""

from __future__ import annotations

import pytest

ENDPOINTS = [
    ("get", "/api/training/models/"),
    ("post", "/api/training/models/"),
    ("get", "/api/training/models/1/"),
    ("get", "/api/training/rounds/"),
    ("post", "/api/training/rounds/"),
    ("get", "/api/training/rounds/1/"),
    ("post", "/api/training/rounds/1/cancel/"),
    ("get", "/api/training/runs/"),
    ("get", "/api/training/runs/1/"),
    ("post", "/api/training/runs/1/cancel/"),
    ("post", "/api/training/runs/1/resume/"),
    ("get", "/api/training/generation-jobs/"),
    ("post", "/api/training/generation-jobs/"),
    ("get", "/api/training/generation-jobs/1/"),
    ("post", "/api/training/generation-jobs/1/cancel/"),
    ("post", "/api/training/generation-jobs/1/resume/"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_it_refuses_reviewers_and_anonymous_callers(api_client, reviewer, method, url):
    assert getattr(api_client, method)(url, {}, format="json").status_code == 401
    api_client.force_authenticate(reviewer)
    assert getattr(api_client, method)(url, {}, format="json").status_code == 403


@pytest.mark.django_db
def test_it_lists_for_managers(api_client, manager):
    api_client.force_authenticate(manager)
    for url in (
        "/api/training/models/",
        "/api/training/rounds/",
        "/api/training/runs/",
        "/api/training/generation-jobs/",
    ):
        assert api_client.get(url).status_code == 200
