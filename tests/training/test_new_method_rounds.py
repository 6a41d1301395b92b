"""Rounds with the new methods: SFT -> reward -> RLOO/GRPO, SFT -> KTO, and the bottleneck adapter,
launched through the service, the launch form and the API."""

from __future__ import annotations

import pytest

from labeling.datasets import BuildParams
from labeling.services.datasets import dataset_build
from tests.training.conftest import FAST_SETTINGS
from training.forms import RoundLaunchForm
from training.models import JobStatus, ModelArtifact, Round
from training.services.rounds import round_launch

ONLINE = {"num_generations": 2, "max_completion_length": 4}


@pytest.mark.django_db(transaction=True)
def test_it_runs_sft_reward_grpo_with_bottleneck_adapters_and_wires_each_stage_to_the_next(
    tiny_model, preference_snapshot, manager, worker
):
    round_ = round_launch(
        name="grpo",
        preset=Round.Preset.SFT_REWARD_GRPO,
        base_model=tiny_model,
        dataset=preference_snapshot,
        launched_by=manager,
        settings={**FAST_SETTINGS, "adapter": "bottleneck"},
        stage_settings={"grpo": {"advanced": ONLINE}},
        evaluate=False,  # (the evaluate stage loads the GRPO policy as any stage would; it is tested with PPO)
    )
    for _ in range(3):
        assert worker.run_once()
    round_.refresh_from_db()
    sft, reward, grpo = round_.runs.order_by("position")
    assert round_.status == Round.Status.SUCCEEDED, [(run.stage, run.error) for run in round_.runs.all()]
    assert reward.input_model == sft.output_model and grpo.input_model == sft.output_model
    assert grpo.reward_model == reward.output_model and grpo.spec["reward_model"] == reward.output_model.path
    assert sft.output_model.kind == ModelArtifact.Kind.ADAPTER and sft.output_model.base_model == tiny_model
    assert reward.output_model.kind == ModelArtifact.Kind.REWARD_MODEL
    for run in (sft, reward, grpo):
        assert run.spec["adapter"]["method"] == "bottleneck"
        assert {"peak_memory_bytes", "train_seconds_per_step", "trainable_parameters"} <= set(run.final_metrics)
        assert run.final_metrics["trainable_parameters"] < run.final_metrics["total_parameters"]
    assert "mean_reward" in grpo.final_metrics


@pytest.mark.parametrize(
    "preset, stages",
    [
        (Round.Preset.SFT_REWARD_RLOO, ["sft", "reward", "rloo", "evaluate"]),
        (Round.Preset.SFT_REWARD_GRPO, ["sft", "reward", "grpo", "evaluate"]),
        (Round.Preset.SFT_KTO, ["sft", "kto", "evaluate"]),
    ],
)
def test_the_new_presets_launch_through_the_service(preset, stages, tiny_model, preference_snapshot, manager):
    round_ = round_launch(
        name="", preset=preset, base_model=tiny_model, dataset=preference_snapshot, launched_by=manager
    )
    runs = list(round_.runs.order_by("position"))
    assert [run.stage for run in runs] == stages
    assert runs[0].status == JobStatus.QUEUED and all(run.status == JobStatus.WAITING for run in runs[1:])
    assert all(run.reward_model is None for run in runs)  # the round's own reward stage scores


@pytest.mark.parametrize("preset", ["sft_reward_rloo", "sft_reward_grpo", "sft_kto"])
def test_the_launch_form_offers_the_new_presets_and_the_bottleneck_adapter(
    preset, tiny_model, preference_snapshot, manager_client
):
    page = manager_client.get("/training/rounds/new/").content.decode()
    assert f'value="{preset}"' in page and 'value="bottleneck"' in page
    response = manager_client.post(
        "/training/rounds/new/",
        {
            "preset": preset,
            "base_model": tiny_model.pk,
            "dataset": preference_snapshot.pk,
            "adapter": "bottleneck",
            "max_steps": "2",
            "evaluate": "on",
        },
    )
    assert response.status_code == 302, response.context["form"].errors
    round_ = Round.objects.get()
    assert round_.preset == preset
    assert all(run.params["adapter"] == "bottleneck" for run in round_.runs.exclude(stage="evaluate"))


def test_the_form_names_each_new_stage_default_learning_rate(db):
    form = RoundLaunchForm(initial={"preset": "sft_reward_grpo", "adapter": "bottleneck"})
    hint = form.learning_rate_hints()["sft_reward_grpo"][""]["bottleneck"]["help"]
    assert "for GRPO" in hint and "for the reward model" in hint
    assert "a bottleneck adapter" in hint


def test_the_api_launches_an_rloo_round_and_refuses_a_single_rloo_stage_without_a_reward_model(
    manager_api, tiny_model, preference_snapshot
):
    response = manager_api.post(
        "/api/training/rounds/",
        {"preset": "single", "stage": "rloo", "base_model": tiny_model.pk, "dataset": preference_snapshot.pk},
        format="json",
    )
    assert response.status_code == 400 and "reward_model" in response.json()["errors"]
    assert "RLOO needs a reward model" in response.json()["detail"]
    assert "sft_reward_rloo" in response.json()["detail"]
    response = manager_api.post(
        "/api/training/rounds/",
        {
            "preset": "sft_reward_rloo",
            "base_model": tiny_model.pk,
            "dataset": preference_snapshot.pk,
            "settings": {"adapter": "bottleneck"},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert Round.objects.get().preset == "sft_reward_rloo"


def test_a_kto_stage_refuses_an_sft_snapshot_and_names_bad_online_settings(
    manager_api, tiny_model, sft_snapshot, preference_snapshot
):
    response = manager_api.post(
        "/api/training/rounds/",
        {"preset": "single", "stage": "kto", "base_model": tiny_model.pk, "dataset": sft_snapshot.pk},
        format="json",
    )
    assert response.status_code == 400 and "dataset" in response.json()["errors"]
    assert "completions are all desirable" in response.json()["detail"]
    response = manager_api.post(
        "/api/training/rounds/",
        {
            "preset": "sft_reward_grpo",
            "base_model": tiny_model.pk,
            "dataset": preference_snapshot.pk,
            "stage_settings": {"grpo": {"advanced": {"num_generations": 1}}},
        },
        format="json",
    )
    assert response.status_code == 400 and "num_generations: must be >= 2" in response.json()["detail"]
    assert not Round.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_kto_round_trains_on_a_kto_snapshot(tiny_model, judged_campaign, manager, worker):
    snapshot, _ = dataset_build(
        campaigns=[judged_campaign],
        params=BuildParams(kind="kto", method="majority", test_fraction=0.25),
        created_by=manager,
    )
    round_ = round_launch(
        name="kto",
        preset=Round.Preset.SINGLE,
        stage="kto",
        base_model=tiny_model,
        dataset=snapshot,
        launched_by=manager,
        settings=FAST_SETTINGS,
        evaluate=False,
    )
    assert worker.run_once()
    run = round_.runs.get()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.output_model is not None and "peak_memory_bytes" in run.final_metrics
