"""Cancel and resume without the engine: what each transition does to the run and its round."""

from __future__ import annotations

import pytest

from tests.training.conftest import FAST_SETTINGS
from training.models import JobStatus, Round, TrainingRun
from training.services.rounds import round_launch

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued_round(tiny_model, preference_snapshot, manager) -> Round:
    return round_launch(
        name="r", preset="sft_dpo", base_model=tiny_model, dataset=preference_snapshot, launched_by=manager,
        settings=FAST_SETTINGS, evaluate=False,
    )  # fmt: skip


def statuses(round_: Round) -> list[str]:
    return list(round_.runs.order_by("position").values_list("status", flat=True))


def test_cancelling_a_queued_round_cancels_every_stage_and_resume_queues_it_again(manager_api, queued_round):
    response = manager_api.post(f"/api/training/rounds/{queued_round.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert statuses(queued_round) == ["cancelled", "cancelled"]

    sft = queued_round.runs.get(position=0)
    resumed = manager_api.post(f"/api/training/runs/{sft.pk}/resume/")
    assert resumed.status_code == 200 and resumed.json()["resume_from"] == "latest"
    assert statuses(queued_round) == ["queued", "waiting"]
    queued_round.refresh_from_db()
    assert (queued_round.status, queued_round.failure_reason) == (Round.Status.QUEUED, "")


def test_a_later_stage_cannot_resume_before_the_one_it_waits_for(manager_api, queued_round):
    manager_api.post(f"/api/training/rounds/{queued_round.pk}/cancel/")
    dpo = queued_round.runs.get(position=1)
    response = manager_api.post(f"/api/training/runs/{dpo.pk}/resume/")
    assert response.status_code == 409 and "resume that one first" in response.json()["detail"]


def test_finished_runs_cannot_be_cancelled_or_resumed(manager_api, queued_round):
    sft = queued_round.runs.get(position=0)
    TrainingRun.objects.filter(pk=sft.pk).update(status=JobStatus.SUCCEEDED)
    assert manager_api.post(f"/api/training/runs/{sft.pk}/cancel/").status_code == 409
    assert manager_api.post(f"/api/training/runs/{sft.pk}/resume/").status_code == 409


def test_cancelling_a_running_run_only_asks_the_worker(manager_api, queued_round):
    sft = queued_round.runs.get(position=0)
    TrainingRun.objects.filter(pk=sft.pk).update(status=JobStatus.RUNNING)
    body = manager_api.post(f"/api/training/runs/{sft.pk}/cancel/").json()
    assert (body["status"], body["cancel_requested"]) == ("running", True)
    assert statuses(queued_round) == ["running", "waiting"]


def test_unknown_ids_answer_404(manager_api):
    assert manager_api.get("/api/training/runs/999/").status_code == 404
    assert manager_api.post("/api/training/rounds/999/cancel/").status_code == 404
