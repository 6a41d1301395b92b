"""Every round ends with a verdict, and an honest one: a learnable preference is called better, the same
round trained on shuffled labels is not."""

from __future__ import annotations

import random
import uuid

import pytest

from labeling.datasets import BuildParams
from labeling.services.datasets import dataset_build
from labeling.services.judgements import judgement_submit
from tests.labeling.factories import claim_next, make_campaign
from tests.training.engine.conftest import marker_preferences
from training.models import ModelArtifact, Round
from training.selectors import round_verdict
from training.services.rounds import round_launch

# Full fine-tuning of the tiny model at a high rate: it learns the marker in about 20 steps
# (tests/training/engine/test_learnability.py).
LEARNING_SETTINGS = {
    "adapter": "full",
    "learning_rate": 1e-3,
    "max_steps": 20,
    "batch_size": 8,
    "max_length": 64,
    "logging_steps": 10,
    "save_steps": 1000,
}
EVALUATION_SETTINGS = {"advanced": {"max_new_tokens": 8, "examples": 3}}


def judged_marker_snapshot(manager, reviewer, *, shuffled: bool):
    """A snapshot of marker pairs (tests/training/engine/conftest.py) as one reviewer judged them: always
    for the marker, or, ``shuffled``, for a side drawn at random. A third of the prompts are held out."""
    pairs = marker_preferences(150, seed=0)
    rows = [
        {"id": f"m{i}", "prompt": pair["prompt"], "responses": [pair["rejected"], pair["chosen"]]}
        for i, pair in enumerate(pairs)
    ]
    campaign = make_campaign(manager=manager, reviewers=[reviewer], tasks=rows, overlap=1, name="Marker")
    coin = random.Random(7)
    while (assignment := claim_next(reviewer=reviewer, campaign=campaign)) is not None:
        responses = dict(assignment.task.responses.values_list("pk", "text"))
        marked = next(pk for pk, text in responses.items() if "Paris" in text)
        winner = coin.choice(list(responses)) if shuffled else marked
        judgement_submit(
            reviewer=reviewer,
            assignment_id=assignment.pk,
            answers={"preference": {"winner": winner, "strength": 2}},
            client_submission_id=str(uuid.uuid4()),
            time_spent_ms=800,
        )
    params = BuildParams(method="majority", test_fraction=0.33, seed=1)
    dataset, _ = dataset_build(campaigns=[campaign], params=params, created_by=manager)
    return dataset


def run_dpo_round(snapshot, base_model, manager, worker) -> Round:
    round_ = round_launch(
        name="marker",
        preset=Round.Preset.SINGLE,
        stage="dpo",
        base_model=base_model,
        dataset=snapshot,
        launched_by=manager,
        settings=LEARNING_SETTINGS,
        stage_settings={"evaluate": EVALUATION_SETTINGS},
    )
    assert worker.run_once() and worker.run_once()
    round_.refresh_from_db()
    assert round_.status == Round.Status.SUCCEEDED, [(run.stage, run.error) for run in round_.runs.all()]
    return round_


def figures_of(report: dict) -> dict[str, dict]:
    return {figure["name"]: figure for figure in report["figures"]}


@pytest.mark.django_db(transaction=True)
def test_a_round_that_learned_the_preference_is_called_better(tiny_model, manager, reviewers, worker):
    snapshot = judged_marker_snapshot(manager, reviewers[0], shuffled=False)
    round_ = run_dpo_round(snapshot, tiny_model, manager, worker)
    report = round_verdict(round_=round_)
    agreement = figures_of(report)["preference_accuracy"]
    assert report["summary"]["verdict"] == "better" and report["summary"]["headline"] == "preference_accuracy"
    assert agreement["new_interval"][0] > 0.5 and agreement["change_interval"][0] > 0
    assert agreement["n"] == snapshot.counts["splits"]["test"]  # every held-out pair, not a per-batch average
    # The verdict is on the model the round made, and the page shows it.
    evaluated = round_.runs.get(stage="dpo").output_model
    assert ModelArtifact.objects.get(pk=evaluated.pk).evaluation["verdict"]["summary"]["verdict"] == "better"
    assert {"answer_tokens", "hit_length_limit", "kl_from_base", "perplexity"} <= set(figures_of(report))
    assert len(report["examples"]) == 3 and all("base" in example for example in report["examples"])


@pytest.mark.django_db(transaction=True)
def test_the_same_round_on_shuffled_labels_is_not_called_better(tiny_model, manager, reviewers, worker):
    snapshot = judged_marker_snapshot(manager, reviewers[0], shuffled=True)
    round_ = run_dpo_round(snapshot, tiny_model, manager, worker)
    report = round_verdict(round_=round_)
    assert report["summary"]["verdict"] != "better", report["summary"]
    assert figures_of(report)["preference_accuracy"]["verdict"] != "better"
