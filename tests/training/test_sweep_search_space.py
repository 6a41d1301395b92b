"""A sweep's search space is checked before anything is written: every bad row gets a field error."""

from __future__ import annotations

import pytest

from tests.training.sweeps import LEARNING_RATE, launch
from training.errors import TrainingError
from training.models import Round, Sweep
from training.services.sweeps import search_space_check

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("row", "field", "says"),
    [
        ({"name": "learning_rat", "type": "float", "low": 1e-6, "high": 1e-3}, "name", "not a setting of the dpo"),
        ({"name": "dataset", "type": "float", "low": 1, "high": 2}, "name", "not a setting"),
        ({"name": "learning_rate", "type": "float", "low": 1e-3, "high": 1e-6}, "high", "must be above low"),
        ({"name": "learning_rate", "type": "float", "low": 0, "high": 1e-3, "log": True}, "low", "log scale"),
        ({"name": "learning_rate", "type": "float", "low": -1e-3, "high": 1e-3}, "low", "must be > 0"),
        ({"name": "adapter.r", "type": "int", "low": 4.5, "high": 8}, "low", "whole number"),
        ({"name": "adapter.r", "type": "int", "low": 0, "high": 8}, "low", "adapter.r"),
        ({"name": "beta", "type": "float", "low": "a", "high": 1}, "low", "A number"),
        ({"name": "beta", "type": "normal", "low": 0.1, "high": 1}, "type", "One of float, int, categorical"),
        ({"name": "adapter.method", "type": "categorical", "choices": []}, "choices", "1 to 20"),
        ({"name": "adapter.method", "type": "categorical", "choices": ["lora", "bogus"]}, "choices", "bogus"),
    ],
)
def test_it_names_the_row_and_field_at_fault(row, field, says):
    alpha = {"name": "adapter.alpha", "type": "int", "low": 8, "high": 64}
    with pytest.raises(TrainingError) as refused:
        search_space_check(stage="dpo", search_space=[alpha, row])
    assert list(refused.value.errors) == [f"search_space.1.{field}"]
    assert says in refused.value.errors[f"search_space.1.{field}"]
    assert refused.value.message.startswith("Parameter 2:")


def test_it_refuses_a_parameter_searched_twice_and_an_empty_space():
    with pytest.raises(TrainingError) as refused:
        search_space_check(stage="dpo", search_space=[LEARNING_RATE, LEARNING_RATE])
    assert "searched twice" in refused.value.errors["search_space.1.name"]
    with pytest.raises(TrainingError) as refused:
        search_space_check(stage="dpo", search_space=[])
    assert "search_space" in refused.value.errors


def test_beta_is_a_dpo_setting_and_not_an_sft_one():
    beta = {"name": "beta", "type": "float", "low": 0.05, "high": 0.5, "log": True}
    assert search_space_check(stage="dpo", search_space=[beta]) == [{**beta, "type": "float"}]
    with pytest.raises(TrainingError) as refused:
        search_space_check(stage="sft", search_space=[beta])
    assert "search_space.0.name" in refused.value.errors


def test_a_refused_launch_writes_nothing(tiny_model, preference_snapshot, manager):
    cases = [
        ({"metric": "pairwise_accuracy"}, "metric"),  # a reward model's figure, not a DPO trial's
        ({"n_trials": 0}, "n_trials"),
        ({"parallel": 5}, "parallel"),
        ({"pruner": "median", "prune_on": "eval_loss"}, "prune_on"),  # no eval_steps: measured at the end only
        ({"stage": "pretrain"}, "stage"),
        ({"search_space": [{**LEARNING_RATE, "low": 0}]}, "search_space.0.low"),
    ]
    for fields, field in cases:
        with pytest.raises(TrainingError) as refused:
            launch(preference_snapshot, tiny_model, manager, **fields)
        assert field in refused.value.errors, (fields, refused.value.errors)
    assert not Sweep.objects.exists() and not Round.objects.exists()
