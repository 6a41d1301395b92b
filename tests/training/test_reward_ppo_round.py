"""Rounds with a reward model (SFT -> reward -> PPO) and with continued pretraining (pretrain -> SFT)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import FAST_SETTINGS
from training.models import ModelArtifact, Round
from training.selectors import model_mistakes
from training.services.rounds import round_launch


@pytest.mark.django_db(transaction=True)
def test_it_runs_sft_reward_ppo_and_wires_each_stage_to_the_next(tiny_model, preference_snapshot, manager, worker):
    round_ = round_launch(
        name="rlhf",
        preset=Round.Preset.SFT_REWARD_PPO,
        base_model=tiny_model,
        dataset=preference_snapshot,
        launched_by=manager,
        settings=FAST_SETTINGS,
        stage_settings={
            "ppo": {"response_length": 4, "advanced": {"num_ppo_epochs": 1}},
            "evaluate": {"advanced": {"max_new_tokens": 4}},
        },
    )
    for _ in range(4):
        assert worker.run_once()
    round_.refresh_from_db()
    sft, reward, ppo, evaluate = round_.runs.order_by("position")
    assert round_.status == Round.Status.SUCCEEDED, [(run.stage, run.error) for run in round_.runs.all()]
    assert reward.input_model == sft.output_model and reward.output_model.kind == ModelArtifact.Kind.REWARD_MODEL
    assert ppo.input_model == sft.output_model and ppo.reward_model == reward.output_model
    assert ppo.spec["reward_model"] == reward.output_model.path
    assert ppo.output_model.produced_by == ppo and ppo.output_model.kind == ModelArtifact.Kind.CAUSAL_LM
    # The verdict: PPO's policy against the base, judged by the round's reward model, whose own
    # accuracy on the held-out pairs is measured beside it.
    assert evaluate.input_model == ppo.output_model and evaluate.output_model is None
    assert evaluate.spec["reward_model"] == reward.output_model.path
    assert evaluate.spec["reference_model"] == tiny_model.path
    figures = {figure["name"] for figure in evaluate.final_metrics["report"]["figures"]}
    assert {"reward_model_accuracy", "win_rate", "mean_reward", "preference_accuracy", "kl_from_base"} <= figures
    # Each held-out prompt's outcome is kept, joined back to its task: the policy's Mistakes page reads it.
    found = model_mistakes(model=ppo.output_model)
    assert found.kind == "policy" and found.message == "" and found.report.count > 0
    assert set(found.table["campaign"]) == {preference_snapshot.campaigns.get().name}


@pytest.mark.django_db(transaction=True)
def test_it_runs_a_pretrain_then_sft_round_on_a_local_text_corpus(tiny_model, sft_snapshot, manager, worker, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "".join(f"Note {i}: the quick brown fox jumps over the lazy dog. A good answer helps.\n" for i in range(40))
    )
    round_ = round_launch(
        name="domain",
        preset=Round.Preset.PRETRAIN_SFT,
        base_model=tiny_model,
        dataset=sft_snapshot,
        pretrain_dataset=str(corpus),
        launched_by=manager,
        settings={**FAST_SETTINGS, "max_length": 32},
        stage_settings={"evaluate": {"advanced": {"max_new_tokens": 4}}},
    )
    assert worker.run_once() and worker.run_once() and worker.run_once()
    round_.refresh_from_db()
    pretrain, sft, evaluate = round_.runs.order_by("position")
    assert round_.status == Round.Status.SUCCEEDED, [(run.stage, run.error) for run in round_.runs.all()]
    report = evaluate.final_metrics["report"]
    assert "perplexity" in {figure["name"] for figure in report["figures"]} and "preferences" not in evaluate.spec
    # Forgetting is measured on a slice of the corpus the pretrain stage held out, not on what it trained on.
    held_out = Path(evaluate.spec["perplexity_texts"]).read_text()
    trained_on = Path(pretrain.spec["dataset"]).read_text()
    assert pretrain.spec["eval_dataset"].endswith("held_out.txt") and held_out.count('"text"') >= 1
    assert "Note 9:" in held_out and "Note 9:" not in trained_on and "Note 8:" in trained_on
    assert sft.input_model == pretrain.output_model
    assert pretrain.output_model.dataset is None and sft.output_model.dataset == sft_snapshot
