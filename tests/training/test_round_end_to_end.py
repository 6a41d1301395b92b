"""Judgements -> snapshot -> an SFT -> DPO round through the API -> worker -> models -> next campaign."""

from __future__ import annotations

import pytest

from labeling.models import Response, Task
from tests.training.conftest import FAST_SETTINGS
from training.models import JobStatus, ModelArtifact, Round, RunMetric, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)  # the worker's heartbeat thread has its own connection


def test_it_trains_an_sft_then_dpo_round_and_generates_the_next_campaign(
    manager_api, tiny_model_dir, preference_snapshot, judged_campaign, worker
):
    registered = manager_api.post("/api/training/models/", {"path": str(tiny_model_dir), "name": "tiny"}, format="json")
    assert registered.status_code == 201, registered.json()
    base = registered.json()
    assert base["kind"] == "causal_lm" and base["parameter_count"] > 0

    launched = manager_api.post(
        "/api/training/rounds/",
        {
            "name": "round 1",
            "preset": "sft_dpo",
            "base_model": base["id"],
            "dataset": preference_snapshot.pk,
            "settings": FAST_SETTINGS,
            "stage_settings": {"dpo": {"beta": 0.2}, "evaluate": {"advanced": {"max_new_tokens": 6}}},
        },
        format="json",
    )
    assert launched.status_code == 201, launched.json()
    round_data = launched.json()
    assert [(r["stage"], r["status"]) for r in round_data["runs"]] == [
        ("sft", "queued"),
        ("dpo", "waiting"),
        ("evaluate", "waiting"),
    ]
    assert round_data["verdict"] is None

    assert worker.run_once()  # SFT
    assert worker.run_once()  # DPO
    assert worker.run_once()  # evaluate
    round_ = Round.objects.get(pk=round_data["id"])
    sft, dpo, evaluate = TrainingRun.objects.filter(round=round_).order_by("position")
    statuses = (sft.status, dpo.status, evaluate.status, round_.status)
    assert statuses == ("succeeded",) * 4, (sft.error, dpo.error, evaluate.error)

    # The verdict: the DPO policy against the base on the snapshot's held-out rows, in the API.
    verdict = manager_api.get(f"/api/training/rounds/{round_.pk}/").json()["verdict"]
    assert verdict["summary"]["verdict"] in ("better", "worse", "no clear change")
    held_out = preference_snapshot.counts["splits"]["test"]
    figures = {figure["name"]: figure for figure in verdict["figures"]}
    assert figures["preference_accuracy"]["n"] == held_out and figures["perplexity"]["n"] == held_out
    assert evaluate.input_model == dpo.output_model and evaluate.spec["reference_model"] == base["path"]

    # Metric series, progress and checkpoints were stored from the engine's events.
    for run in (sft, dpo):
        assert run.step == run.total_steps == 2
        assert RunMetric.objects.filter(run=run, values__has_key="loss").exists()
        assert [c["step"] for c in run.checkpoints] == [1, 2]
    detail = manager_api.get(f"/api/training/runs/{dpo.pk}/").json()
    assert [point[0] for point in detail["metric_series"]["train"]["loss"]] == [1, 2]
    assert detail["spec"]["beta"] == 0.2 and detail["spec"]["stage"] == "dpo"

    # Lineage: the SFT output feeds DPO, and each output model names its run and snapshot.
    assert dpo.input_model_id == sft.output_model_id
    policy = dpo.output_model
    assert policy.produced_by_id == dpo.pk and policy.dataset_id == preference_snapshot.pk
    assert policy.kind == ModelArtifact.Kind.CAUSAL_LM and "train_loss" in policy.evaluation
    assert (policy.directory / "config.json").is_file()

    generated = manager_api.post(
        "/api/training/generation-jobs/",
        {
            "model": policy.pk,
            "compare_with": base["id"],
            "source_campaign": judged_campaign.pk,
            "campaign_name": "round 2",
            "params": {"num_candidates": 1, "max_new_tokens": 6, "seed": 3},
        },
        format="json",
    )
    assert generated.status_code == 201, generated.json()
    assert worker.run_once()
    job = manager_api.get(f"/api/training/generation-jobs/{generated.json()['id']}/").json()
    assert job["status"] == JobStatus.SUCCEEDED, job["error"]
    tasks = Task.objects.filter(campaign_id=job["campaign"])
    assert tasks.count() == job["result"]["tasks"] > 0
    # Each task pairs the new policy's answer against the previous model's, for an A/B review.
    models_per_task = {
        task.pk: sorted(Response.objects.filter(task=task).values_list("model_name", flat=True)) for task in tasks
    }
    assert all(names == sorted([policy.name, "tiny"]) for names in models_per_task.values())
