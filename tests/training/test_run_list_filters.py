"""The run list's filters (``?status=``, ``?stage=``) are checked like any other input: an unknown
value is a 400 with a field error, not an empty list, and a NUL character never reaches the
database (PostgreSQL refuses it in text and answered 500; found by tests/rlhf_platform/test_api_fuzz.py)."""

from __future__ import annotations

import pytest

from training.models import JobStatus


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field"),
    [("status=queued%00", "status"), ("stage=%00", "stage"), ("status=finished", "status"), ("stage=rlhf", "stage")],
)
def test_it_refuses_a_filter_value_it_does_not_know(api_client, manager, query, field):
    api_client.force_authenticate(manager)
    response = api_client.get(f"/api/training/runs/?{query}")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {field}


@pytest.mark.django_db
def test_it_filters_by_status_and_stage(api_client, manager, training_round):
    api_client.force_authenticate(manager)
    queued = api_client.get("/api/training/runs/?status=queued&stage=sft").json()["results"]
    assert [run["stage"] for run in queued] == ["sft"]
    assert api_client.get("/api/training/runs/?status=waiting&stage=sft").json()["results"] == []
    assert len(api_client.get("/api/training/runs/").json()["results"]) == 2
    assert len(api_client.get(f"/api/training/runs/?status={JobStatus.WAITING}&stage=").json()["results"]) == 1
