"""An SFT -> reward -> PPO round: the reward stage's model becomes PPO's reward model, the SFT model its policy."""

from __future__ import annotations

import pytest

from tests.training.conftest import FAST_SETTINGS
from training.models import ModelArtifact, Round
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
        stage_settings={"ppo": {"response_length": 4, "advanced": {"num_ppo_epochs": 1}}},
    )
    for _ in range(3):
        assert worker.run_once()
    round_.refresh_from_db()
    sft, reward, ppo = round_.runs.order_by("position")
    assert round_.status == Round.Status.SUCCEEDED, [(run.stage, run.error) for run in (sft, reward, ppo)]
    assert reward.input_model == sft.output_model and reward.output_model.kind == ModelArtifact.Kind.REWARD_MODEL
    assert ppo.input_model == sft.output_model and ppo.reward_model == reward.output_model
    assert ppo.spec["reward_model"] == reward.output_model.path
    assert ppo.output_model.produced_by == ppo and ppo.output_model.kind == ModelArtifact.Kind.CAUSAL_LM
