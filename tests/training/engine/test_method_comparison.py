"""LoRA, the bottleneck adapter, IA3 and full fine-tuning on one synthetic snapshot: every variant
trains, and each reports its trainable parameters and what its training cost."""

from __future__ import annotations

import json

from tests.training.engine.conftest import run_spec_in_process, sft_rows, write_jsonl

METHODS = ("full", "lora", "bottleneck", "ia3")


def test_each_method_trains_on_the_same_data_and_reports_its_size_and_cost(tiny_model, tmp_path):
    dataset = write_jsonl(tmp_path / "sft.jsonl", sft_rows(32, seed=7))
    reports = {}
    for method in METHODS:
        spec = {
            "stage": "sft",
            "model": str(tiny_model),
            "output_dir": str(tmp_path / method),
            "dataset": str(dataset),
            "eval_fraction": 0.0,
            "max_steps": 3,
            "batch_size": 4,
            "logging_steps": 1,
            "adapter": {"method": method},
        }
        status, events = run_spec_in_process(spec)
        assert status == 0, (method, events[-1])
        reports[method] = json.loads((tmp_path / method / "metrics.json").read_text())

    for method, report in reports.items():
        assert report["global_step"] == 3, method
        assert {"peak_memory_bytes", "train_seconds_per_step", "train_tokens_per_second"} <= set(report), method
        # an adapter's own weights come on top of the base's
        assert report["total_parameters"] >= reports["full"]["total_parameters"], method
    trainable = {method: report["trainable_parameters"] for method, report in reports.items()}
    assert trainable["full"] == reports["full"]["total_parameters"]
    assert trainable["ia3"] < trainable["bottleneck"] < trainable["lora"] < trainable["full"]
    assert reports["full"]["trainable_percent"] == 100
    assert all(0 < reports[method]["trainable_percent"] < 100 for method in ("lora", "bottleneck", "ia3"))
