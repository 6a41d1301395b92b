"""Error slices, end to end: a reward model trained on a snapshot whose reviewers preferred the marker word
on every topic but one, where they preferred the other word. Nothing in the text tells the topic, so the
tiny reward model learns the marker and is wrong on exactly that topic's held-out pairs: the Mistakes
page and its API report that ``meta`` slice worst, and flag it."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from labeling.datasets import BuildParams
from labeling.services.datasets import dataset_build
from labeling.services.judgements import judgement_submit
from tests.labeling.factories import claim_next, make_campaign
from tests.training.engine.conftest import DISTRACTOR, MARKER, marker_preferences
from training.models import ModelArtifact, Round
from training.selectors import model_mistakes
from training.services.rounds import round_launch

REVERSED_TOPIC = "geography"
# Full fine-tuning of the tiny model at a high rate learns the marker (tests/training/engine/test_learnability.py).
REWARD_SETTINGS = {
    "adapter": "full",
    "learning_rate": 1e-3,
    "max_steps": 40,
    "batch_size": 8,
    "max_length": 64,
    "logging_steps": 10,
    "save_steps": 1000,
}


def topic_of(index: int) -> str:
    return REVERSED_TOPIC if index % 5 == 0 else ("cooking" if index % 2 else "sport")


def judged_snapshot(manager, reviewer):
    """160 marker pairs in three topics; the reviewer prefers the marker, except on geography."""
    pairs = marker_preferences(160, seed=0)
    rows = [
        {"id": f"m{i}", "prompt": pair["prompt"], "responses": [pair["rejected"], pair["chosen"]],
         "meta": {"topic": topic_of(i)}}
        for i, pair in enumerate(pairs)
    ]  # fmt: skip
    campaign = make_campaign(manager=manager, reviewers=[reviewer], tasks=rows, overlap=1, name="Marker")
    while (assignment := claim_next(reviewer=reviewer, campaign=campaign)) is not None:
        responses = dict(assignment.task.responses.values_list("pk", "text"))
        word = DISTRACTOR if assignment.task.meta["topic"] == REVERSED_TOPIC else MARKER
        winner = next(pk for pk, text in responses.items() if word in text.split())
        judgement_submit(
            reviewer=reviewer,
            assignment_id=assignment.pk,
            answers={"preference": {"winner": winner, "strength": 2}},
            client_submission_id=str(uuid.uuid4()),
            time_spent_ms=800,
        )
    dataset, _ = dataset_build(
        campaigns=[campaign], params=BuildParams(method="majority", test_fraction=0.35, seed=1), created_by=manager
    )
    return dataset


@pytest.mark.django_db(transaction=True)
def test_the_reward_model_is_reported_worst_on_the_one_topic_it_gets_wrong(
    tiny_model, manager, reviewers, worker, manager_client
):
    snapshot = judged_snapshot(manager, reviewers[0])
    round_ = round_launch(
        name="reward",
        preset=Round.Preset.SINGLE,
        stage="reward",
        base_model=tiny_model,
        dataset=snapshot,
        launched_by=manager,
        settings=REWARD_SETTINGS,
    )
    assert worker.run_once() and worker.run_once()
    round_.refresh_from_db()
    assert round_.status == Round.Status.SUCCEEDED, [(run.stage, run.error) for run in round_.runs.all()]
    reward_model = ModelArtifact.objects.get(pk=round_.runs.get(stage="reward").output_model_id)

    found = model_mistakes(model=reward_model)
    assert found.kind == "reward" and found.message == "" and found.report.count == snapshot.counts["splits"]["test"]
    worst = found.report.slices[0]
    assert (worst.dimension, worst.key, worst.value) == ("meta", "topic", REVERSED_TOPIC), found.report.slices[:3]
    assert worst.much_worse and worst.score < 0.5
    assert [item.value for item in found.report.slices if item.much_worse] == [REVERSED_TOPIC]
    for topic in ("cooking", "sport"):
        other = next(item for item in found.report.slices if item.key == "topic" and item.value == topic)
        assert other.score > 0.5 and not other.much_worse
    assert {item.dimension for item in found.report.slices} == {"campaign", "meta", "prompt_length", "agreement"}

    page = manager_client.get(reverse("training:model-mistakes", args=[reward_model.pk])).content.decode()
    assert page.split('<tr data-slice="')[1].startswith(f'meta:topic:{REVERSED_TOPIC}" class="much-worse"')
    api = manager_client.get(reverse("api-training-model-mistakes", args=[reward_model.pk])).json()
    assert (api["slices"][0]["value"], api["slices"][0]["much_worse"]) == (REVERSED_TOPIC, True)
