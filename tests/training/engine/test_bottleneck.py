"""The bottleneck adapter: it trains under the SFT, DPO and reward trainers with only its weights (and a
reward model's new head) trainable, saves as a small safetensors adapter naming its base, and loads
again wherever a trained model is used later."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from tests.training.engine.conftest import marker_preferences, run_spec_in_process, sft_rows, write_jsonl
from training.engine import bottleneck
from training.engine.adapters import apply_adapter
from training.engine.models import detect_device, load_causal_lm, load_reward_model, load_tokenizer
from training.engine.spec import AdapterSpec, SpecError, check_model_dir
from training.engine.stages import load_spec


def spec(tiny_model, tmp_path, stage: str, dataset, *, name: str = "out", adapter=None, **fields) -> dict:
    return {
        "stage": stage,
        "model": str(tiny_model),
        "output_dir": str(tmp_path / name),
        "dataset": str(dataset),
        "max_steps": 3,
        "batch_size": 4,
        "logging_steps": 1,
        "learning_rate": 1e-2,
        "adapter": adapter or {"method": "bottleneck", "reduction_factor": 4},
        **fields,
    }


@pytest.mark.parametrize("placement, per_layer", [("pfeiffer", 1), ("houlsby", 2)])
def test_fresh_adapters_leave_the_model_unchanged_and_only_they_train(tiny_model, placement, per_layer):
    device = detect_device()
    base = load_causal_lm(str(tiny_model), device)
    adapted = apply_adapter(
        copy.deepcopy(base), AdapterSpec(method="bottleneck", placement=placement, reduction_factor=4), task_type="x"
    )
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        assert torch.equal(base(ids).logits, adapted(ids).logits)
    trainable = [name for name, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all(bottleneck.is_adapter_parameter(name) for name in trainable)
    # down and up, weight and bias, per adapter; 2 layers
    assert len(trainable) == 2 * 2 * 2 * per_layer
    down = dict(adapted.named_parameters())["model.layers.0.bottleneck_feedforward.down.weight"]
    assert down.shape == (32 // 4, 32)


def test_it_fine_tunes_with_only_adapter_weights_and_reloads_with_the_same_outputs(
    tiny_model, tmp_path, trainable_snapshot
):
    dataset = write_jsonl(tmp_path / "sft.jsonl", sft_rows(24, seed=0))
    status, events = run_spec_in_process(
        spec(tiny_model, tmp_path, "sft", dataset, adapter={"method": "bottleneck", "placement": "houlsby"})
    )
    assert status == 0, events[-1]
    assert trainable_snapshot.unchanged() == []
    assert all(bottleneck.is_adapter_parameter(name) for name in trainable_snapshot.names)
    output = tmp_path / "out" / "model"
    config = json.loads((output / "bottleneck_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model.resolve())
    assert config["placement"] == "houlsby"
    assert not (output / "model.safetensors").exists()  # only the adapter is saved, not the base again
    check_model_dir(str(output), "model")

    trained = trainable_snapshot.model
    reloaded = load_causal_lm(str(output), detect_device())
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, trained.cpu().eval()(ids).logits)
        assert not torch.equal(reloaded(ids).logits, load_causal_lm(str(tiny_model), detect_device())(ids).logits)
    assert load_tokenizer(str(output)).chat_template


def test_it_trains_a_reward_model_whose_head_is_saved_with_the_adapters(tiny_model, tmp_path, trainable_snapshot):
    dataset = write_jsonl(tmp_path / "pairs.jsonl", marker_preferences(24, seed=1))
    status, events = run_spec_in_process(spec(tiny_model, tmp_path, "reward", dataset))
    assert status == 0, events[-1]
    assert trainable_snapshot.unchanged() == []
    assert {name.split(".")[0] for name in trainable_snapshot.names} == {"model", "score"}
    trained = trainable_snapshot.model.cpu().eval()
    reloaded = load_reward_model(str(tmp_path / "out" / "model"), detect_device())
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, trained(ids).logits)


def test_dpo_trains_it_against_a_reference_without_the_adapters(tiny_model, tmp_path, trainable_snapshot):
    dataset = write_jsonl(tmp_path / "pairs.jsonl", marker_preferences(24, seed=2))
    status, events = run_spec_in_process(spec(tiny_model, tmp_path, "dpo", dataset))
    assert status == 0, events[-1]
    assert trainable_snapshot.unchanged() == []
    assert all(bottleneck.is_adapter_parameter(name) for name in trainable_snapshot.names)


def test_a_later_stage_trains_from_a_bottleneck_model(tiny_model, tmp_path):
    sft_data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(24, seed=0))
    status, events = run_spec_in_process(spec(tiny_model, tmp_path, "sft", sft_data, name="sft"))
    assert status == 0, events[-1]
    sft_model = tmp_path / "sft" / "model"
    pairs = write_jsonl(tmp_path / "pairs.jsonl", marker_preferences(24, seed=3))
    # Fully fine-tuned on top: the whole model is saved with the adapters in it, and loads with them.
    dpo = spec(tiny_model, tmp_path, "dpo", pairs, name="dpo", adapter={"method": "full"}, learning_rate=1e-3)
    status, events = run_spec_in_process({**dpo, "model": str(sft_model)})
    assert status == 0, events[-1]
    dpo_model = tmp_path / "dpo" / "model"
    assert json.loads((dpo_model / "config.json").read_text())["bottleneck_adapter"]["placement"] == "pfeiffer"
    reloaded = load_causal_lm(str(dpo_model), detect_device())
    assert bottleneck.has_adapters(reloaded)
    # and a LoRA stage after that names it as its base
    lora = spec(tiny_model, tmp_path, "sft", sft_data, name="lora", adapter={"method": "lora"})
    status, events = run_spec_in_process({**lora, "model": str(dpo_model)})
    assert status == 0, events[-1]
    assert bottleneck.has_adapters(load_causal_lm(str(tmp_path / "lora" / "model"), detect_device()))


def test_a_frozen_copy_keeps_its_own_adapters(tiny_model):
    model = load_causal_lm(str(tiny_model), detect_device())
    apply_adapter(model, AdapterSpec(method="bottleneck", reduction_factor=4), task_type="x")
    reference = copy.deepcopy(model)
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        before = reference(ids).logits.clone()
        for name, parameter in model.named_parameters():
            if bottleneck.is_adapter_parameter(name):
                parameter.add_(1.0)
        assert torch.equal(reference(ids).logits, before)
        assert not torch.equal(model(ids).logits, before)


@pytest.mark.parametrize(
    "adapter, field",
    [
        ({"method": "bottleneck", "reduction_factor": 0}, "adapter.reduction_factor"),
        ({"method": "bottleneck", "placement": "parallel"}, "adapter.placement"),
        ({"method": "bottleneck", "non_linearity": "swish"}, "adapter.non_linearity"),
        ({"method": "bottleneck", "merge": True}, "adapter.merge"),
    ],
)
def test_its_settings_are_checked_by_name(adapter, field, tmp_path):
    with pytest.raises(SpecError, match=f"^{field}:"):
        load_spec(
            {"stage": "sft", "model": "m", "output_dir": "o", "dataset": "d", "adapter": adapter}, check_paths=False
        )


def test_a_directory_with_a_config_but_no_weights_is_refused(tmp_path):
    (tmp_path / "bottleneck_config.json").write_text("{}")
    with pytest.raises(SpecError, match=r"no bottleneck_model\.safetensors"):
        check_model_dir(str(tmp_path), "model")


def test_a_bottleneck_stage_after_a_bottleneck_stage_trains_the_same_adapters_on(tiny_model, tmp_path):
    sft_data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(24, seed=0))
    status, events = run_spec_in_process(spec(tiny_model, tmp_path, "sft", sft_data, name="sft"))
    assert status == 0, events[-1]
    pairs = write_jsonl(tmp_path / "pairs.jsonl", marker_preferences(24, seed=3))
    reward = {**spec(tiny_model, tmp_path, "reward", pairs, name="reward"), "model": str(tmp_path / "sft" / "model")}
    status, events = run_spec_in_process(reward)
    assert status == 0, events[-1]
    saved = tmp_path / "reward" / "model"
    assert json.loads((saved / "bottleneck_config.json").read_text())["base_model_name_or_path"] == str(
        tmp_path / "sft" / "model"
    )
    model = load_reward_model(str(saved), detect_device())
    sft_adapters = load_causal_lm(str(tmp_path / "sft" / "model"), detect_device())
    name = "model.layers.0.bottleneck_feedforward.up.weight"
    assert not torch.equal(dict(model.named_parameters())[name], dict(sft_adapters.named_parameters())[name])

    other = {
        **reward,
        "output_dir": str(tmp_path / "other"),
        "adapter": {"method": "bottleneck", "placement": "houlsby"},
    }
    status, events = run_spec_in_process(other)
    assert status == 1 and "adapter.placement: the model already carries bottleneck adapters" in events[-1]["error"]
