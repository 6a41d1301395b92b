"""Launches that cannot run are refused with a clear message, and nothing is queued."""

from __future__ import annotations

import json

from labeling.datasets import BuildParams
from labeling.services.datasets import dataset_build
from tests.training.conftest import FAST_SETTINGS
from training.models import ModelArtifact, Round, TrainingRun


def launch(client, **fields):
    return client.post("/api/training/rounds/", {"settings": FAST_SETTINGS, **fields}, format="json")


def assert_refused(response, field: str, *words: str) -> None:
    assert response.status_code == 400, response.json()
    body = response.json()
    assert field in body["errors"], body
    for word in words:
        assert word in body["detail"], body
    assert not Round.objects.exists() and not TrainingRun.objects.exists()


def test_it_refuses_a_reward_stage_on_a_snapshot_without_pairs(manager_api, tiny_model, sft_snapshot):
    response = launch(manager_api, preset="single", stage="reward", base_model=tiny_model.pk, dataset=sft_snapshot.pk)
    assert_refused(response, "dataset", "reward stage", "preference pairs", "sft snapshot")


def test_it_refuses_ppo_without_a_reward_model(manager_api, tiny_model, preference_snapshot):
    response = launch(
        manager_api, preset="single", stage="ppo", base_model=tiny_model.pk, dataset=preference_snapshot.pk
    )
    assert_refused(response, "reward_model", "PPO needs a reward model")


def test_it_refuses_a_causal_lm_as_the_reward_model(manager_api, tiny_model, preference_snapshot):
    response = launch(
        manager_api,
        preset="single",
        stage="ppo",
        base_model=tiny_model.pk,
        dataset=preference_snapshot.pk,
        reward_model=tiny_model.pk,
    )
    assert_refused(response, "reward_model", "not a reward model")


def test_a_corpus_without_the_text_column_is_refused_at_launch(manager_api, tiny_model, tmp_path, sft_snapshot):
    texts = tmp_path / "corpus.jsonl"
    texts.write_text(json.dumps({"body": "no text column here"}) + "\n")
    response = launch(
        manager_api,
        preset="pretrain_sft",
        base_model=tiny_model.pk,
        dataset=sft_snapshot.pk,
        pretrain_dataset=str(texts),
    )
    # Not a queued round whose pretrain stage fails when the worker reaches it.
    assert_refused(response, "pretrain_dataset", "needs columns {text}", "set text_field")


def test_a_corpus_with_its_text_in_another_column_launches_with_text_field(
    manager_api, tiny_model, tmp_path, sft_snapshot
):
    texts = tmp_path / "corpus.jsonl"
    texts.write_text("".join(json.dumps({"body": f"paragraph {i}"}) + "\n" for i in range(30)))
    response = launch(
        manager_api,
        preset="pretrain_sft",
        base_model=tiny_model.pk,
        dataset=sft_snapshot.pk,
        pretrain_dataset=str(texts),
        stage_settings={"pretrain": {"text_field": "body"}},
    )
    assert response.status_code == 201, response.json()


def test_it_refuses_evaluation_without_held_out_data(manager_api, tiny_model, judged_campaign, manager):
    everything, _ = dataset_build(
        campaigns=[judged_campaign], params=BuildParams(method="majority"), created_by=manager
    )
    response = launch(manager_api, preset="sft_dpo", base_model=tiny_model.pk, dataset=everything.pk)
    assert_refused(response, "dataset", "holds none out", "test share", "switch evaluation off")
    switched_off = launch(
        manager_api, preset="sft_dpo", base_model=tiny_model.pk, dataset=everything.pk, evaluate=False
    )
    assert switched_off.status_code == 201, switched_off.json()
    assert [run["stage"] for run in switched_off.json()["runs"]] == ["sft", "dpo"]


def test_it_refuses_an_advanced_setting_no_stage_has(manager_api, tiny_model, preference_snapshot):
    response = launch(
        manager_api,
        preset="sft_dpo",
        base_model=tiny_model.pk,
        dataset=preference_snapshot.pk,
        settings={**FAST_SETTINGS, "advanced": {"lr_schedular": "cosine"}},
    )
    assert_refused(response, "advanced", "advanced.lr_schedular is not a setting of any stage", "lr_scheduler")


def test_it_refuses_a_stage_without_a_snapshot(manager_api, tiny_model):
    assert_refused(
        launch(manager_api, preset="sft_dpo", base_model=tiny_model.pk), "dataset", "needs a dataset snapshot"
    )


def test_it_refuses_settings_the_engine_rejects(manager_api, tiny_model, preference_snapshot):
    response = launch(
        manager_api,
        preset="sft_dpo",
        base_model=tiny_model.pk,
        dataset=preference_snapshot.pk,
        stage_settings={"dpo": {"advanced": {"label_smoothing": 0.9}}},
    )
    assert_refused(response, "settings", "dpo", "label_smoothing")


def test_it_refuses_platform_wiring_in_advanced_settings(manager_api, tiny_model, preference_snapshot):
    response = launch(
        manager_api,
        preset="single",
        stage="sft",
        base_model=tiny_model.pk,
        dataset=preference_snapshot.pk,
        settings={**FAST_SETTINGS, "advanced": {"output_dir": "/etc"}},
    )
    assert_refused(response, "advanced", "advanced.output_dir")


def test_it_queues_a_valid_round_with_later_stages_waiting(manager_api, tiny_model, preference_snapshot, tmp_path):
    reward = ModelArtifact.objects.create(name="rm", kind="reward_model", path=tiny_model.path)
    response = launch(manager_api, preset="sft_reward_ppo", base_model=tiny_model.pk, dataset=preference_snapshot.pk)
    assert response.status_code == 201, response.json()
    assert [(run["stage"], run["status"]) for run in response.json()["runs"]] == [
        ("sft", "queued"),
        ("reward", "waiting"),
        ("ppo", "waiting"),
        ("evaluate", "waiting"),
    ]
    single = launch(
        manager_api, preset="single", stage="ppo", base_model=tiny_model.pk, dataset=preference_snapshot.pk,
        reward_model=reward.pk,
    )  # fmt: skip
    assert single.status_code == 201, single.json()
    assert TrainingRun.objects.get(round_id=single.json()["id"], stage="ppo").reward_model == reward
