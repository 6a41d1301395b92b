"""KTO, RLOO and GRPO train a few steps on a tiny model: trainable parameters change, events are well
formed, the outputs reload, and a cancel stops them with a checkpoint they resume from."""

from __future__ import annotations

import json
import random

import pytest

from tests.training.engine.conftest import (
    marker_preferences,
    only,
    run_spec_in_process,
    write_jsonl,
)
from tests.training.engine.test_stages import assert_well_formed_run, common
from training.engine.events import CancelFlag
from training.engine.models import detect_device, load_causal_lm
from training.engine.spec import SpecError
from training.engine.stages import load_spec


def kto_rows(count: int, *, seed: int) -> list[dict]:
    """Unpaired completions: those with the marker are desirable, those with the distractor are not."""
    rows = []
    for index, pair in enumerate(marker_preferences(count, seed=seed)):
        desirable = index % 2 == 0
        completion = pair["chosen"] if desirable else pair["rejected"]
        rows.append({"prompt": pair["prompt"], "completion": completion, "label": desirable})
    return rows


def prompts(tmp_path, count: int = 16):
    generator = random.Random(0)
    rows = [{"prompt": f"Question {i}: say {generator.choice(['yes', 'no'])}"} for i in range(count)]
    return write_jsonl(tmp_path / "prompts.jsonl", rows)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_it_runs_kto_on_labelled_completions(method, tiny_model, tmp_path, trainable_snapshot):
    dataset = write_jsonl(tmp_path / "kto.jsonl", kto_rows(40, seed=0))
    spec = common(tiny_model, tmp_path, dataset=str(dataset), adapter={"method": method})
    status, events = run_spec_in_process({"stage": "kto", **spec})
    assert status == 0, events[-1]
    assert_well_formed_run(events, total_steps=3)
    assert trainable_snapshot.unchanged() == []
    final = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert {"peak_memory_bytes", "train_seconds_per_step", "trainable_parameters", "kl"} <= set(final)
    assert final["train_tokens_per_second"] > 0
    assert load_causal_lm(str(tmp_path / "out" / "model"), detect_device()) is not None


def test_kto_refuses_rows_of_one_kind_only(tiny_model, tmp_path):
    rows = [{**row, "label": True} for row in kto_rows(12, seed=0)]
    dataset = write_jsonl(tmp_path / "kto.jsonl", rows)
    status, events = run_spec_in_process({"stage": "kto", **common(tiny_model, tmp_path, dataset=str(dataset))})
    assert status == 1
    assert "needs both desirable and undesirable" in events[-1]["error"]


@pytest.mark.parametrize(
    "stage, adapter, beta",
    [("rloo", "full", 0.05), ("rloo", "lora", 0.05), ("grpo", "full", 0.0), ("grpo", "bottleneck", 0.04)],
)
def test_it_runs_online_rl_scored_by_a_reward_model(stage, adapter, beta, tiny_model, tmp_path, trainable_snapshot):
    spec = common(
        tiny_model,
        tmp_path,
        dataset=str(prompts(tmp_path)),
        reward_model=str(tiny_model),
        adapter={"method": adapter, "reduction_factor": 4},
        max_steps=2,
        num_generations=2,
        max_completion_length=6,
        eval_fraction=0.25,
        beta=beta,
    )
    status, events = run_spec_in_process({"stage": stage, **spec})
    assert status == 0, events[-1]
    assert trainable_snapshot.unchanged() == []
    final = only(events, "finished")[0]["metrics"]
    assert final["global_step"] == 2
    assert {"mean_reward", "peak_memory_bytes", "train_seconds_per_step", "trainable_parameters"} <= set(final)
    if beta:
        assert "kl" in final
    assert only(events, "checkpoint")
    assert load_causal_lm(str(tmp_path / "out" / "model"), detect_device()) is not None


def test_online_rl_keeps_its_reference_frozen_while_the_policy_moves(tiny_model, tmp_path, monkeypatch):
    """The engine's frozen copy is the KL reference (not a model TRL loads again from a path)."""
    import torch

    from training.engine.stages import online

    seen = {}
    original = online.with_reference

    def recording(trainer_class):
        cls = original(trainer_class)

        class Recording(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                seen["trainer"] = self
                seen["reference"] = {n: p.detach().clone() for n, p in self.ref_model.named_parameters()}

        return Recording

    monkeypatch.setattr(online, "with_reference", recording)
    spec = common(
        tiny_model,
        tmp_path,
        dataset=str(prompts(tmp_path)),
        reward_model=str(tiny_model),
        adapter={"method": "full"},
        max_steps=2,
        num_generations=2,
        max_completion_length=6,
    )
    status, events = run_spec_in_process({"stage": "rloo", **spec})
    assert status == 0, events[-1]
    trainer = seen["trainer"]
    assert trainer.beta == 0.05 and trainer.ref_model is not trainer.model
    after = dict(trainer.ref_model.named_parameters())
    assert all(torch.equal(before, after[name]) for name, before in seen["reference"].items())


def test_a_cancelled_grpo_run_checkpoints_and_resumes(tiny_model, tmp_path):
    spec = common(
        tiny_model,
        tmp_path,
        dataset=str(prompts(tmp_path)),
        reward_model=str(tiny_model),
        adapter={"method": "lora"},
        max_steps=3,
        num_generations=2,
        max_completion_length=4,
        eval_fraction=0.0,
    )
    cancel = CancelFlag()
    cancel.requested = True  # asked before the first step ends: it stops after step 1, with a checkpoint
    status, events = run_spec_in_process({"stage": "grpo", **spec}, cancel=cancel)
    assert status == 0 and events[-1]["event"] == "cancelled", events[-1]
    assert events[-1]["checkpoint"].endswith("checkpoint-1")
    status, events = run_spec_in_process({"stage": "grpo", **spec, "resume_from": "latest"})
    assert status == 0, events[-1]
    assert only(events, "finished")[0]["metrics"]["global_step"] == 3


@pytest.mark.parametrize(
    "stage, fields, field",
    [
        ("kto", {"beta": 0}, "beta"),
        ("kto", {"batch_size": 1}, "batch_size"),
        ("kto", {"desirable_weight": 0}, "desirable_weight"),
        ("rloo", {"reward_model": ""}, "reward_model"),
        ("rloo", {"num_generations": 1}, "num_generations"),
        ("grpo", {"num_generations": 3, "batch_size": 8}, "num_generations"),
        ("grpo", {"max_completion_length": 0}, "max_completion_length"),
        ("grpo", {"epsilon": 1.5}, "epsilon"),
        ("rloo", {"beta": -1}, "beta"),
        ("rloo", {"temperature": 0}, "temperature"),
    ],
)
def test_new_stage_fields_are_checked_by_name(stage, fields, field):
    wiring = {"reward_model": "r"} if stage != "kto" else {}
    spec = {"stage": stage, "model": "m", "output_dir": "o", "dataset": "d", **wiring, **fields}
    with pytest.raises(SpecError, match=f"^{field}:"):
        load_spec(spec, check_paths=False)
