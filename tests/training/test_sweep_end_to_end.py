"""The issue's sweep: 4 trials over the learning rate on a learnable synthetic preference, run by the
real worker code; the best trial's metric is the best of the trials, and the promoted model is its own."""

from __future__ import annotations

import uuid

import pytest

from labeling.datasets import BuildParams
from labeling.services.datasets import dataset_build
from labeling.services.judgements import judgement_submit
from tests.labeling.factories import claim_next, make_campaign
from tests.training.engine.conftest import marker_preferences
from tests.training.sweeps import InProcessExecutor
from training.models import Round, RunMetric, Sweep, TrialState
from training.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)  # the worker's heartbeat thread has its own connection

# A few steps of a full fine-tune per trial: enough for the rate to matter, short enough for the suite.
TRIAL_SETTINGS = {
    "adapter": "full",
    "max_steps": 6,
    "batch_size": 8,
    "max_length": 48,
    "logging_steps": 2,
    "save_steps": 1000,
}


def marker_snapshot(manager, reviewer):
    """Pairs where the chosen answer carries a marker word (tests/training/engine/conftest.py), judged
    for the marker every time; a third of the prompts held out for the evaluate stage."""
    pairs = marker_preferences(48, seed=0)
    rows = [
        {"id": f"m{i}", "prompt": pair["prompt"], "responses": [pair["rejected"], pair["chosen"]]}
        for i, pair in enumerate(pairs)
    ]
    campaign = make_campaign(manager=manager, reviewers=[reviewer], tasks=rows, overlap=1, name="Marker")
    while (assignment := claim_next(reviewer=reviewer, campaign=campaign)) is not None:
        responses = dict(assignment.task.responses.values_list("pk", "text"))
        judgement_submit(
            reviewer=reviewer,
            assignment_id=assignment.pk,
            answers={
                "preference": {"winner": next(pk for pk, text in responses.items() if "Paris" in text), "strength": 2}
            },
            client_submission_id=str(uuid.uuid4()),
            time_spent_ms=800,
        )
    params = BuildParams(method="majority", test_fraction=0.33, seed=1)
    return dataset_build(campaigns=[campaign], params=params, created_by=manager)[0]


def test_a_four_trial_learning_rate_sweep_finds_and_promotes_its_best_trial(
    manager_api, tiny_model, manager, reviewers
):
    worker = Worker(executor=InProcessExecutor(), heartbeat_s=0.5, log=lambda message: None)
    snapshot = marker_snapshot(manager, reviewers[0])
    launched = manager_api.post(
        "/api/training/sweeps/",
        {
            "name": "learning rate",
            "stage": "dpo",
            "dataset": snapshot.pk,
            "base_model": tiny_model.pk,
            "search_space": [{"name": "learning_rate", "type": "float", "low": 1e-6, "high": 1e-2, "log": True}],
            "n_trials": 4,
            "metric": "logprob_margin",
            "seed": 3,
            "settings": TRIAL_SETTINGS,
            "stage_settings": {"evaluate": {"advanced": {"max_new_tokens": 4, "examples": 0}}},
        },
        format="json",
    )
    assert launched.status_code == 201, launched.json()
    sweep = Sweep.objects.get(pk=launched.json()["id"])

    for _ in range(8):  # 4 trials of two runs each (DPO, then evaluate), one after another
        assert worker.run_once()
    assert not worker.run_once()

    sweep.refresh_from_db()
    trials = list(sweep.trials.order_by("trial_number"))
    assert sweep.status == Sweep.Status.FINISHED, [(t.trial_number, t.failure_reason) for t in trials]
    assert [t.trial_number for t in trials] == [0, 1, 2, 3]
    assert all(t.trial_state == TrialState.COMPLETE and t.status == Round.Status.SUCCEEDED for t in trials)
    rates = [t.trial_params["learning_rate"] for t in trials]
    assert len(set(rates)) == 4 and all(1e-6 <= rate <= 1e-2 for rate in rates)
    for trial in trials:  # each trial trained at its own rate, and its value is its evaluate stage's figure
        dpo, evaluate = trial.runs.order_by("position")
        assert dpo.spec["learning_rate"] == trial.trial_params["learning_rate"]
        assert evaluate.final_metrics["logprob_margin"] == trial.trial_value
        assert RunMetric.objects.filter(run=dpo, values__has_key="loss").exists()

    values = [t.trial_value for t in trials]
    assert sweep.best_trial.trial_value == max(values)
    assert max(values) > 0.5 > min(values)  # the preference is learnable: a good rate learns it, a tiny one not

    detail = manager_api.get(f"/api/training/sweeps/{sweep.pk}/").json()
    assert detail["trials"][0]["rank"] == 1 and detail["trials"][0]["value"] == max(values)
    promoted = manager_api.post(f"/api/training/sweeps/{sweep.pk}/promote/")
    assert promoted.status_code == 200, promoted.json()
    best_model = sweep.best_trial.runs.get(stage="dpo").output_model
    assert promoted.json()["promoted_model"] == best_model.pk and best_model.kind == "causal_lm"
