"""Launching a comparison: one round per variant, the same seed and budget, all or nothing."""

from __future__ import annotations

import pytest

from training.errors import TrainingError
from training.models import Comparison, JobStatus, ModelArtifact, Round, TrainingRun
from training.services.comparisons import (
    adapter_variants,
    alignment_variants,
    comparison_launch,
    comparison_stages,
)

pytestmark = pytest.mark.django_db


def launch(tiny_model, snapshot, manager, **overrides):
    arguments = {
        "kind": "adapters",
        "stage": "sft",
        "variants": ["lora", "ia3", "full"],
        "base_model": tiny_model,
        "dataset": snapshot,
        "launched_by": manager,
        "seed": 7,
        "max_steps": 3,
        "settings": {"batch_size": 2},
    }
    return comparison_launch(**{**arguments, **overrides})


def test_it_queues_one_single_stage_round_per_variant_with_the_same_seed_and_budget(
    tiny_model, preference_snapshot, manager
):
    comparison = launch(tiny_model, preference_snapshot, manager)

    rounds = list(comparison.rounds.order_by("pk"))
    assert [r.variant for r in rounds] == ["lora", "ia3", "full"] == comparison.variants
    for round_ in rounds:
        assert round_.preset == Round.Preset.SINGLE and round_.dataset == preference_snapshot
        runs = list(round_.runs.order_by("position"))
        assert [(run.stage, run.status) for run in runs] == [("sft", JobStatus.QUEUED), ("evaluate", JobStatus.WAITING)]
        params = runs[0].params
        assert (params["seed"], params["max_steps"], params["batch_size"]) == (7, 3, 2)
        assert params["adapter"] == round_.variant
    assert (comparison.seed, comparison.max_steps, comparison.epochs) == (7, 3, None)


def test_a_variant_ticked_twice_counts_once(tiny_model, preference_snapshot, manager):
    with pytest.raises(TrainingError) as refused:
        launch(tiny_model, preference_snapshot, manager, kind="alignment", adapter="lora", variants=["dpo", "dpo"])
    assert refused.value.errors["variants"] == "Choose 2 to 8."


def test_a_bad_variant_names_itself_and_leaves_nothing(tiny_model, preference_snapshot, manager):
    """PPO needs a reward model: the DPO round checked before it must not be kept either."""
    with pytest.raises(TrainingError) as refused:
        launch(tiny_model, preference_snapshot, manager, kind="alignment", adapter="lora", variants=["dpo", "ppo"])
    assert refused.value.message.startswith("Variant ppo: ")
    assert refused.value.errors["variants"].startswith("ppo: ")
    assert refused.value.errors["reward_model"].startswith("ppo: ")
    assert not Comparison.objects.exists() and not Round.objects.exists() and not TrainingRun.objects.exists()


def test_a_spec_the_engine_rejects_names_its_variant(tiny_model, preference_snapshot, manager):
    with pytest.raises(TrainingError) as refused:
        launch(tiny_model, preference_snapshot, manager, settings={"advanced": {"adapter": {"merge": True}}})
    # merge applies to adapter methods only: lora and ia3 pass, full is refused.
    assert refused.value.message.startswith("Variant full: ") and "adapter.merge" in refused.value.message
    assert not Round.objects.exists() and not Comparison.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"variants": ["lora"]}, "variants"),
        ({"variants": ["lora", "dora"]}, "variants"),
        ({"stage": "evaluate"}, "stage"),
        ({"stage": None}, "stage"),
        ({"kind": "alignment", "adapter": "nope", "variants": ["dpo", "ppo"]}, "adapter"),
        ({"kind": "sideways"}, "kind"),
        ({"max_steps": None}, "max_steps"),
        ({"max_steps": 2, "epochs": 1.0}, "max_steps"),
        ({"max_steps": None, "epochs": 0.0}, "epochs"),
        ({"settings": {"seed": 1}}, "settings"),
        ({"stage_settings": {"dpo": {"beta": 0.2}}}, "stage_settings"),
    ],
)
def test_bad_input_is_a_field_error_and_writes_nothing(tiny_model, preference_snapshot, manager, overrides, field):
    with pytest.raises(TrainingError) as refused:
        launch(tiny_model, preference_snapshot, manager, **overrides)
    assert field in refused.value.errors
    assert not Comparison.objects.exists() and not Round.objects.exists()


def test_variants_come_from_the_engines_tables():
    assert {"full", "lora", "qlora", "ia3", "freeze"} <= set(adapter_variants())
    assert {"dpo", "ppo"} <= set(alignment_variants())
    assert not {"sft", "pretrain", "reward", "evaluate"} & set(alignment_variants())
    assert "sft" in comparison_stages() and "evaluate" not in comparison_stages()


def test_the_reward_model_lets_ppo_in(tiny_model, preference_snapshot, manager, tmp_path):
    reward = ModelArtifact.objects.create(name="rm", path=str(tmp_path), kind=ModelArtifact.Kind.REWARD_MODEL)
    comparison = launch(
        tiny_model,
        preference_snapshot,
        manager,
        kind="alignment",
        adapter="lora",
        variants=["dpo", "ppo"],
        reward_model=reward,
        stage_settings={"dpo": {"beta": 0.2}},
    )
    dpo, ppo = (comparison.rounds.get(variant=v).runs.get(position=0) for v in ("dpo", "ppo"))
    assert dpo.params["beta"] == 0.2 and "beta" not in ppo.params
    assert ppo.reward_model == reward and dpo.params["adapter"] == ppo.params["adapter"] == "lora"
