"""Bad specs fail with a message naming the field, before any model is loaded."""

from __future__ import annotations

import json

import pytest

from tests.training.engine.conftest import marker_preferences, write_jsonl
from training.engine import spec as spec_module
from training.engine.spec import SpecError
from training.engine.stages import STAGES, load_spec, spec_to_dict
from training.engine.stages.dpo_spec import DPOSpec
from training.engine.stages.sft_spec import SFTSpec


@pytest.fixture
def preferences(tmp_path):
    return write_jsonl(tmp_path / "prefs.jsonl", marker_preferences(4, seed=0))


@pytest.fixture
def dpo_spec(tiny_model, tmp_path, preferences) -> dict:
    return {"stage": "dpo", "model": str(tiny_model), "output_dir": str(tmp_path / "out"), "dataset": str(preferences)}


def rejects(spec: dict, *fragments: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_it_fills_defaults_from_the_papers_and_trl(dpo_spec):
    spec = load_spec(dpo_spec)
    assert isinstance(spec, DPOSpec)
    assert (spec.beta, spec.loss_type, spec.learning_rate, spec.adapter.method) == (0.1, "sigmoid", 2e-4, "lora")
    assert spec_to_dict(spec)["stage"] == "dpo"


@pytest.mark.parametrize(
    ("method", "learning_rate"),
    [("lora", 2e-4), ("ia3", 2e-4), ("full", 1e-6), ("freeze", 1e-6)],
)
def test_the_default_learning_rate_follows_the_adapter_method(dpo_spec, method, learning_rate):
    assert load_spec({**dpo_spec, "adapter": {"method": method}}).learning_rate == learning_rate
    assert DPOSpec.default_learning_rate("qlora") == 2e-4  # qlora's spec checks need CUDA


def test_a_given_learning_rate_wins_over_the_default(dpo_spec):
    assert load_spec({**dpo_spec, "adapter": {"method": "full"}, "learning_rate": 3e-4}).learning_rate == 3e-4


def test_each_stage_trains_adapters_at_ten_times_its_full_rate_or_more():
    # At most a few hundred times: DPO's adapter rate, measured on the demo model, is 200x its full rate.
    for stage, spec_class in ((name, stage.spec) for name, stage in STAGES.items()):
        if issubclass(spec_class, spec_module.TrainingSpec):
            full, lora = spec_class.default_learning_rate("full"), spec_class.default_learning_rate("lora")
            assert 10 * full == pytest.approx(lora) or 10 * full < lora <= 300 * full, stage


def test_it_reads_a_spec_file_and_round_trips_it(dpo_spec, tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({**dpo_spec, "adapter": {"method": "ia3"}, "max_steps": 5}))
    spec = load_spec(path)
    assert load_spec(spec_to_dict(spec)) == spec


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"stage": "orpo"}, ["stage: must be one of"]),
        ({"learning_rte": 1e-5}, ["learning_rte: unknown field", "learning_rate"]),
        ({"adapter": {"method": "lora", "rank": 8}}, ["adapter.rank: unknown field"]),
        ({"adapter": {"method": "dora"}}, ["adapter.method: must be one of", "dora"]),
        ({"beta": "high"}, ["beta: must be a number"]),
        ({"beta": 0}, ["beta: must be > 0"]),
        ({"max_steps": 2.5}, ["max_steps: must be an integer"]),
        ({"batch_size": True}, ["batch_size: must be an integer"]),
        ({"eval_fraction": 1.5}, ["eval_fraction: must be in [0, 1)"]),
        ({"loss_type": "kto"}, ["loss_type: must be one of"]),
        ({"adapter": {"method": "full", "merge": True}}, ["adapter.merge: only applies to adapter methods"]),
        ({"model": None}, ["model: must be a string"]),
        ({"resume_from": "/nonexistent/checkpoint-3"}, ["resume_from:", "is not a directory"]),
    ],
)
def test_it_rejects_bad_fields_naming_them(dpo_spec, change, fragments):
    rejects({**dpo_spec, **change}, *fragments)


def test_it_requires_model_and_output_dir(dpo_spec):
    rejects({k: v for k, v in dpo_spec.items() if k != "output_dir"}, "output_dir: is required")


def test_it_rejects_a_model_path_that_is_not_a_local_model_directory(dpo_spec, tmp_path):
    rejects({**dpo_spec, "model": "HuggingFaceTB/SmolLM2-135M"}, "model:", "not a local directory")
    (tmp_path / "empty").mkdir()
    rejects({**dpo_spec, "model": str(tmp_path / "empty")}, "model:", "no config.json")
    (tmp_path / "empty" / "config.json").write_text("{}")
    (tmp_path / "empty" / "pytorch_model.bin").write_bytes(b"")
    rejects({**dpo_spec, "model": str(tmp_path / "empty")}, "model:", "no .safetensors")
    rejects({**dpo_spec, "gguf_file": "model.Q4.gguf"}, "gguf_file:", "is not a file")
    rejects({**dpo_spec, "reference_model": str(tmp_path)}, "reference_model:", "no config.json")


def test_it_rejects_datasets_without_the_stage_columns(dpo_spec, tmp_path):
    sft_rows = write_jsonl(tmp_path / "sft.jsonl", [{"prompt": "Q", "completion": "A"}])
    rejects({**dpo_spec, "dataset": str(sft_rows)}, "dataset:", "needs columns {chosen, rejected}", "completion")
    rejects({**dpo_spec, "eval_dataset": str(tmp_path / "missing.jsonl")}, "eval_dataset:", "does not exist")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "Q", "chosen": "A", "rejected": "B"}\n{oops\n')
    load_spec({**dpo_spec, "dataset": str(broken)})  # columns come from the first line only
    sft = {**dpo_spec, "stage": "sft", "dataset": str(broken)}
    rejects(sft, "dataset:", "needs columns {prompt, completion} or {messages}")
    (tmp_path / "notes.csv").write_text("a,b\n")
    rejects({**dpo_spec, "dataset": str(tmp_path / "notes.csv")}, "dataset:", "unsupported format")


def test_it_rejects_qlora_without_cuda_before_loading_anything(dpo_spec, monkeypatch):
    monkeypatch.setattr(spec_module, "_cuda_available", lambda: False)
    rejects({**dpo_spec, "adapter": {"method": "qlora"}}, "adapter.method: qlora needs a CUDA device")


def test_it_checks_stage_specific_requirements(tiny_model, tmp_path, preferences):
    base = {"model": str(tiny_model), "output_dir": str(tmp_path / "out")}
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "Q"}])
    rejects({"stage": "ppo", **base, "dataset": str(prompts)}, "reward_model: is required")
    ppo = {"stage": "ppo", **base, "dataset": str(prompts), "reward_model": str(tiny_model)}
    rejects({**ppo, "batch_size": 3, "num_mini_batches": 2}, "num_mini_batches: must divide")
    generate = {"stage": "generate", **base, "prompts": str(prompts), "num_candidates": 2}
    rejects({**generate, "temperature": [0.7, 1.0, 1.3]}, "temperature: needs one value per candidate")
    rejects({**generate, "top_p": 1.5}, "top_p: must be <= 1")
    rejects({"stage": "evaluate", **base, "kind": "reward"}, "preferences: is required")
    rejects({"stage": "evaluate", **base, "benchmarks": ["arc_easy"]}, "benchmark_data: is required")
    rejects({"stage": "evaluate", **base, "benchmarks": ["truthfulqa_mc1"]}, "truthfulqa: is required", "no package")
    rejects({"stage": "evaluate", **base, "benchmarks": ["boolq"]}, "benchmarks: unknown benchmark 'boolq'")


def test_field_checks_read_no_file_and_path_checks_come_after_them(tmp_path):
    """The web app checks fields at launch, before the models later stages train exist; the engine
    checks paths when the stage starts."""
    spec = {"stage": "dpo", "model": "/not/yet/trained", "output_dir": "out", "dataset": "/not/yet/exported.jsonl"}
    assert load_spec(spec, check_paths=False).learning_rate == 2e-4
    rejects(spec, "model: /not/yet/trained is not a local directory")
    with pytest.raises(SpecError, match="beta: must be > 0"):
        load_spec({**spec, "beta": 0}, check_paths=False)


def test_it_resolves_paths_so_saved_adapters_name_an_absolute_base(tiny_model, tmp_path, monkeypatch, preferences):
    monkeypatch.chdir(tiny_model.parent)
    spec = load_spec(
        {"stage": "sft", "model": tiny_model.name, "output_dir": "out", "dataset": str(_sft_file(tmp_path))}
    )
    assert isinstance(spec, SFTSpec)
    assert spec.model == str(tiny_model) and spec.output_dir == str(tiny_model.parent / "out")


def _sft_file(tmp_path):
    return write_jsonl(tmp_path / "sft.jsonl", [{"prompt": "Q", "completion": "A"}])
