"""CUDA paths: bf16 and 4-bit QLoRA. Skipped without a CUDA device."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.training.engine.conftest import marker_preferences, only, run_spec_in_process, sft_rows, write_jsonl

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_it_trains_in_bf16_on_cuda_with_gradient_checkpointing(tiny_model, tmp_path, trainable_snapshot):
    dataset = write_jsonl(tmp_path / "prefs.jsonl", marker_preferences(24, seed=0))
    spec = {
        "stage": "dpo",
        "model": str(tiny_model),
        "output_dir": str(tmp_path / "out"),
        "dataset": str(dataset),
        "max_steps": 3,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "adapter": {"method": "lora"},
    }
    status, events = run_spec_in_process(spec)
    assert status == 0, events[-1]
    assert events[0]["device"] == "cuda" and events[0]["dtype"] == "bfloat16"
    assert trainable_snapshot.unchanged() == []


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
def test_it_trains_a_qlora_adapter_on_4_bit_weights(tiny_model, tmp_path, trainable_snapshot):
    dataset = write_jsonl(tmp_path / "sft.jsonl", sft_rows(24, seed=0))
    spec = {
        "stage": "sft",
        "model": str(tiny_model),
        "output_dir": str(tmp_path / "out"),
        "dataset": str(dataset),
        "max_steps": 3,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "adapter": {"method": "qlora", "target_modules": ["q_proj", "v_proj"]},
    }
    status, events = run_spec_in_process(spec)
    assert status == 0, events[-1]
    assert trainable_snapshot.unchanged() == []
    assert (tmp_path / "out" / "model" / "adapter_model.safetensors").is_file()
    counts = only(events, "finished")[0]["metrics"]
    assert counts["trainable_parameters"] < counts["total_parameters"]
