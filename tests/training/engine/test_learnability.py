"""A synthetic preference the tiny model can learn: responses with the marker word are preferred."""

from __future__ import annotations

import pytest

from tests.training.engine.conftest import marker_preferences, only, run_spec_in_process, write_jsonl


@pytest.fixture
def preference_split(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", marker_preferences(160, seed=0))
    held_out = write_jsonl(tmp_path / "held_out.jsonl", marker_preferences(60, seed=1))
    return train, held_out


def training_spec(stage: str, tiny_model, tmp_path, train, held_out, **fields) -> dict:
    return {
        "stage": stage,
        "model": str(tiny_model),
        "output_dir": str(tmp_path / stage),
        "dataset": str(train),
        "eval_dataset": str(held_out),
        "batch_size": 8,
        "learning_rate": 1e-3,
        "logging_steps": 10,
        "save_steps": 1000,
        "adapter": {"method": "full"},
        **fields,
    }


def evaluate(tmp_path, model, held_out, **fields) -> dict:
    spec = {"stage": "evaluate", "model": str(model), "output_dir": str(tmp_path / "eval"), **fields}
    status, events = run_spec_in_process({**spec, "preferences": str(held_out)})
    assert status == 0, events[-1]
    return only(events, "finished")[0]["metrics"]


def test_the_reward_model_learns_the_preference(tiny_model, tmp_path, preference_split):
    train, held_out = preference_split
    before = evaluate(tmp_path, tiny_model, held_out, kind="reward")
    status, events = run_spec_in_process(training_spec("reward", tiny_model, tmp_path, train, held_out, max_steps=40))
    assert status == 0, events[-1]
    trained = only(events, "finished")[0]["metrics"]
    assert trained["eval_pairwise_accuracy"] >= 0.9
    after = evaluate(tmp_path, tmp_path / "reward" / "model", held_out, kind="reward")
    # The evaluate stage renders pairs as TRL's RewardTrainer does, so both measure the same thing.
    assert after["pairwise_accuracy"] == pytest.approx(trained["eval_pairwise_accuracy"])
    assert after["mean_margin"] > before["mean_margin"] + 1.0


def test_dpo_raises_the_chosen_over_rejected_margin_on_held_out_pairs(tiny_model, tmp_path, preference_split):
    train, held_out = preference_split
    spec = training_spec("dpo", tiny_model, tmp_path, train, held_out, max_steps=20, beta=0.1)
    status, events = run_spec_in_process(spec)
    assert status == 0, events[-1]
    trained = only(events, "finished")[0]["metrics"]
    assert trained["eval_rewards/accuracies"] >= 0.9 and trained["eval_rewards/margins"] > 0.1
    policy = evaluate(tmp_path, tmp_path / "dpo" / "model", held_out, kind="policy", reference_model=str(tiny_model))
    assert policy["logprob_margin"] > policy["reference_logprob_margin"] + 1.0
    assert policy["preference_accuracy"] >= 0.9 > policy["reference_preference_accuracy"]
    # TRL's implicit reward margin is beta times the log-prob margin gained over the reference.
    gained = policy["logprob_margin"] - policy["reference_logprob_margin"]
    assert trained["eval_rewards/margins"] == pytest.approx(0.1 * gained, rel=0.05)
