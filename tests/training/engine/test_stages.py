"""Every stage runs a few steps on a tiny model: trainable parameters change, events are well formed, outputs reload."""

from __future__ import annotations

import json

import pytest
import torch

from tests.training.engine.conftest import marker_preferences, only, run_spec_in_process, sft_rows, write_jsonl
from training.engine.models import detect_device, load_causal_lm, load_reward_model


def common(tiny_model, tmp_path, **fields) -> dict:
    return {
        "model": str(tiny_model),
        "output_dir": str(tmp_path / "out"),
        "max_steps": 3,
        "batch_size": 4,
        "logging_steps": 1,
        "learning_rate": 1e-2,
        **fields,
    }


def assert_well_formed_run(events: list[dict], total_steps: int) -> None:
    assert events[0]["event"] == "started" and events[-1]["event"] == "finished", [e["event"] for e in events]
    progress = only(events, "progress")
    assert progress and progress[-1]["step"] == total_steps and progress[-1]["total_steps"] == total_steps
    assert set(progress[-1]) >= {"step", "total_steps", "epoch", "tokens_seen", "eta_s"}
    assert progress[-1]["tokens_seen"] > 0
    losses = [e for e in only(events, "metrics") if "loss" in e]
    assert losses and all(set(e) >= {"loss", "learning_rate", "grad_norm"} for e in losses)
    counts = next(e for e in only(events, "metrics") if "trainable_parameters" in e)
    assert 0 < counts["trainable_parameters"] <= counts["total_parameters"]
    assert only(events, "checkpoint")


@pytest.mark.parametrize("method", ["full", "lora", "ia3", "bottleneck", "freeze"])
def test_it_fine_tunes_with_each_adapter_method(method, tiny_model, tmp_path, trainable_snapshot):
    dataset = write_jsonl(tmp_path / "sft.jsonl", sft_rows(24, seed=0))
    adapter = {"method": method, "freeze_last_n_layers": 1}
    status, events = run_spec_in_process(
        {"stage": "sft", **common(tiny_model, tmp_path, dataset=str(dataset), adapter=adapter)}
    )
    assert status == 0, events[-1]
    assert_well_formed_run(events, total_steps=3)
    assert trainable_snapshot.unchanged() == []
    counts = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert counts["peak_memory_bytes"] > 10 * 2**20  # the process's peak resident set, on CPU
    assert 0 < counts["train_seconds_per_step"] < 60
    assert counts["train_tokens_per_second"] > 0  # SFT counts its tokens
    if method == "full":
        assert counts["trainable_parameters"] == counts["total_parameters"]
    else:
        assert counts["trainable_parameters"] < counts["total_parameters"]
    if method == "freeze":
        assert all(".layers.1." in name or name == "model.norm.weight" for name in trainable_snapshot.names)
    if method in ("lora", "ia3"):
        assert (tmp_path / "out" / "model" / "adapter_model.safetensors").is_file()
    reloaded = load_causal_lm(str(tmp_path / "out" / "model"), detect_device())
    assert reloaded.config.vocab_size > 0
    assert json.loads((tmp_path / "out" / "spec.json").read_text())["adapter"]["method"] == method


def test_it_trains_on_messages_and_on_the_completion_only(tiny_model, tmp_path, trainable_snapshot):
    rows = [
        {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": "Paris."}]}
        for i in range(12)
    ]
    dataset = write_jsonl(tmp_path / "messages.jsonl", rows)
    status, events = run_spec_in_process(
        {"stage": "sft", **common(tiny_model, tmp_path, dataset=str(dataset), adapter={"method": "full"})}
    )
    assert status == 0, events[-1]
    assert trainable_snapshot.unchanged() == []


def test_it_continues_pretraining_on_text_files(tiny_model, tmp_path, trainable_snapshot):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index in range(3):
        (corpus / f"doc{index}.txt").write_text("The quick brown fox jumps over the lazy dog. " * 40)
    spec = common(tiny_model, tmp_path, dataset=str(corpus), max_length=32, adapter={"method": "lora"})
    status, events = run_spec_in_process({"stage": "pretrain", **spec})
    assert status == 0, events[-1]
    assert_well_formed_run(events, total_steps=3)
    assert trainable_snapshot.unchanged() == []
    assert load_causal_lm(str(tmp_path / "out" / "model"), detect_device()) is not None


def test_it_trains_a_reward_model_with_lora_and_a_margin(tiny_model, tmp_path, trainable_snapshot):
    dataset = write_jsonl(tmp_path / "prefs.jsonl", marker_preferences(40, seed=0))
    spec = common(tiny_model, tmp_path, dataset=str(dataset), adapter={"method": "lora"})
    status, events = run_spec_in_process({"stage": "reward", **spec})
    assert status == 0, events[-1]
    assert_well_formed_run(events, total_steps=3)
    assert trainable_snapshot.unchanged() == []
    assert any(name.endswith("score.modules_to_save.default.weight") for name in trainable_snapshot.names)
    evaluation = only(events, "eval")[-1]
    assert 0 <= evaluation["eval_accuracy"] <= 1
    reloaded = load_reward_model(str(tmp_path / "out" / "model"), detect_device())  # base + adapter, merged
    assert reloaded.num_labels == 1


def test_it_saves_a_merged_adapter_as_full_weights(tiny_model, tmp_path):
    dataset = write_jsonl(tmp_path / "prefs.jsonl", marker_preferences(24, seed=0))
    spec = common(tiny_model, tmp_path, dataset=str(dataset), adapter={"method": "lora", "merge": True})
    status, events = run_spec_in_process({"stage": "reward", **spec})
    assert status == 0, events[-1]
    saved = tmp_path / "out" / "model"
    assert not (saved / "adapter_config.json").exists() and (saved / "model.safetensors").is_file()
    assert load_reward_model(str(saved), detect_device()).num_labels == 1


def test_it_runs_dpo_and_reports_held_out_rewards(tiny_model, tmp_path, trainable_snapshot):
    dataset = write_jsonl(tmp_path / "prefs.jsonl", marker_preferences(40, seed=0))
    spec = common(tiny_model, tmp_path, dataset=str(dataset), adapter={"method": "full"}, beta=0.2)
    status, events = run_spec_in_process({"stage": "dpo", **spec})
    assert status == 0, events[-1]
    assert_well_formed_run(events, total_steps=3)
    assert trainable_snapshot.unchanged() == []
    final = only(events, "finished")[0]["metrics"]
    assert {"eval_rewards/accuracies", "eval_rewards/margins"} <= set(final)
    assert {"peak_memory_bytes", "train_seconds_per_step"} <= set(final)
    assert load_causal_lm(str(tmp_path / "out" / "model"), detect_device()) is not None


def test_it_runs_dpo_with_precomputed_reference_log_probs(tiny_model, tmp_path, trainable_snapshot):
    dataset = write_jsonl(tmp_path / "prefs.jsonl", marker_preferences(24, seed=1))
    spec = common(tiny_model, tmp_path, dataset=str(dataset), adapter={"method": "lora"}, precompute_ref_log_probs=True)
    status, events = run_spec_in_process({"stage": "dpo", **spec})
    assert status == 0, events[-1]
    assert trainable_snapshot.unchanged() == []


def test_it_runs_ppo_with_a_reward_model_and_reports_reward_kl_and_value_loss(tiny_model, tmp_path, trainable_snapshot):
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"Question {i}: say"} for i in range(16)])
    spec = common(
        tiny_model,
        tmp_path,
        dataset=str(prompts),
        reward_model=str(tiny_model),
        adapter={"method": "full"},
        max_steps=2,
        response_length=8,
        num_ppo_epochs=1,
        eval_fraction=0.25,
    )
    status, events = run_spec_in_process({"stage": "ppo", **spec})
    assert status == 0, events[-1]
    assert trainable_snapshot.unchanged() == []
    final = only(events, "finished")[0]["metrics"]
    assert final["global_step"] == 2
    assert {"mean_reward", "kl", "value_loss", "peak_memory_bytes", "train_seconds_per_step"} <= set(final)
    assert load_causal_lm(str(tmp_path / "out" / "model"), detect_device()) is not None


def test_it_generates_k_candidates_per_prompt_in_the_import_format(tiny_model, tmp_path):
    from labeling.schema import parse_question_schema
    from labeling.services.imports import parse_row

    rows = [{"id": "a", "prompt": "Question: what is the capital of France?", "meta": {"topic": "geo"}}]
    rows.append({"id": "b", "prompt": [{"role": "user", "content": "Say something good."}]})
    prompts = write_jsonl(tmp_path / "prompts.jsonl", rows)
    spec = {
        "stage": "generate",
        "model": str(tiny_model),
        "output_dir": str(tmp_path / "gen"),
        "prompts": str(prompts),
        "num_candidates": 3,
        "temperature": [0.7, 1.0, 1.0],
        "top_p": 0.9,
        "max_new_tokens": 6,
        "model_name": "tiny-v1",
    }
    status, events = run_spec_in_process(spec)
    assert status == 0, events[-1]
    tasks = [json.loads(line) for line in (tmp_path / "gen" / "candidates.jsonl").read_text().splitlines()]
    assert [task["id"] for task in tasks] == ["a", "b"]
    assert tasks[0]["meta"] == {"topic": "geo"}
    schema = parse_question_schema({"questions": [{"id": "rank", "type": "ranking"}]})
    for task in tasks:
        assert [r["meta"]["temperature"] for r in task["responses"]] == [0.7, 1.0, 1.0]
        assert {r["model"] for r in task["responses"]} == {"tiny-v1"}
        assert len(parse_row(task, schema).responses) == 3
    assert only(events, "finished")[0]["metrics"]["responses"] == 6


def test_it_evaluates_a_reward_model_and_a_policy(tiny_model, tmp_path):
    preferences = write_jsonl(tmp_path / "prefs.jsonl", marker_preferences(12, seed=3))
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"Question {i}:"} for i in range(12)])
    texts = [{"text": f"Note {i}: the quick brown fox jumps over the lazy dog."} for i in range(12)]
    texts = write_jsonl(tmp_path / "texts.jsonl", texts)
    base = {"stage": "evaluate", "model": str(tiny_model), "max_new_tokens": 4}
    status, events = run_spec_in_process(
        {**base, "output_dir": str(tmp_path / "rm"), "kind": "reward", "preferences": str(preferences)}
    )
    assert status == 0, events[-1]
    reward_metrics = only(events, "finished")[0]["metrics"]
    accuracy = reward_metrics["report"]["figures"][0]
    assert accuracy["name"] == "pairwise_accuracy" and accuracy["n"] == 12
    assert accuracy["new_interval"][0] <= reward_metrics["pairwise_accuracy"] <= accuracy["new_interval"][1]

    policy_spec = {
        **base,
        "output_dir": str(tmp_path / "policy"),
        "kind": "policy",
        "prompts": str(prompts),
        "reward_model": str(tiny_model),
        "reference_model": str(tiny_model),
        "perplexity_texts": str(texts),
        "preferences": str(preferences),
    }
    status, events = run_spec_in_process(policy_spec)
    assert status == 0, events[-1]
    metrics = only(events, "finished")[0]["metrics"]
    report = metrics["report"]
    figures = {figure["name"]: figure for figure in report["figures"]}
    # The policy is its own reference here: every figure that does not sample is the same on both
    # sides, over enough items for a verdict, and none is called better or worse.
    for name in ("preference_accuracy", "logprob_margin", "perplexity"):
        figure = figures[name]
        assert figure["n"] == 12 and figure["change"] == pytest.approx(0.0, abs=1e-9), name
        assert figure["verdict"] == "no clear change", name
    assert 1 < metrics["perplexity"] < 10 * 400  # a random model over a 400-token vocabulary
    assert metrics["kl_from_base"] == pytest.approx(0.0, abs=1e-4)
    assert torch.isfinite(torch.tensor(metrics["mean_reward"])) and 0 <= metrics["win_rate"] <= 1
    # A random reward model is no judge: its win rate never decides the verdict.
    assert report["summary"]["headline"] == "preference_accuracy"
    assert report["summary"]["verdict"] == "no clear change", report["summary"]
    assert len(report["examples"]) == 12 and report["examples"][0]["new_tokens"] <= 4
    progress = only(events, "progress")
    assert progress[-1]["step"] == progress[-1]["total_steps"] > 0
    assert [event["step"] for event in progress] == sorted(event["step"] for event in progress)


def test_a_side_by_side_evaluation_needs_one_tokenizer(tiny_model, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    other = tmp_path / "other-tokenizer"
    shutil.copytree(tiny_model, other)
    tokenizer = AutoTokenizer.from_pretrained(other)
    tokenizer.add_tokens(["zzqx"])
    tokenizer.save_pretrained(other)
    texts = write_jsonl(tmp_path / "texts.jsonl", [{"text": "The quick brown fox."}] * 3)
    spec = {"stage": "evaluate", "model": str(tiny_model), "reference_model": str(other),
            "output_dir": str(tmp_path / "eval"), "perplexity_texts": str(texts)}  # fmt: skip
    status, events = run_spec_in_process(spec)
    assert status == 1 and "reference_model: its tokenizer differs from the model's" in events[-1]["error"]


def test_it_keeps_only_the_chosen_sft_sources(tiny_model, tmp_path):
    rows = [{**row, "source": "rewrite" if i % 2 else "best"} for i, row in enumerate(sft_rows(16, seed=0))]
    dataset = write_jsonl(tmp_path / "sft.jsonl", rows)
    spec = common(tiny_model, tmp_path, dataset=str(dataset), eval_fraction=0.0, max_steps=2, sources=["rewrite"])
    status, events = run_spec_in_process({"stage": "sft", **spec})
    assert status == 0, events[-1]
    assert only(events, "progress")[-1]["epoch"] == 1.0  # 8 rewrites in 2 steps of 4


def test_a_tokenizer_without_a_chat_template_gets_the_default_for_conversations(tiny_model, tmp_path):
    import shutil

    from training.engine.models import DEFAULT_CHAT_TEMPLATE, load_tokenizer

    bare = tmp_path / "bare-model"
    shutil.copytree(tiny_model, bare)
    (bare / "chat_template.jinja").unlink()
    tokenizer = load_tokenizer(str(bare))
    assert tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False
    )
    assert rendered == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    rows = [
        {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": "Paris."}]}
        for i in range(8)
    ]
    spec = common(bare, tmp_path, dataset=str(write_jsonl(tmp_path / "messages.jsonl", rows)), max_steps=2)
    status, events = run_spec_in_process({"stage": "sft", **spec})
    assert status == 0, events[-1]
    assert load_tokenizer(str(tmp_path / "out" / "model")).chat_template == DEFAULT_CHAT_TEMPLATE


def test_generation_draws_empty_candidates_again_and_leaves_out_prompts_that_stay_empty(monkeypatch):
    from training.engine.stages import generate
    from training.engine.stages.generate_spec import GenerateSpec

    class Tokenizer:
        chat_template = None

    # Prompt "p1": its second candidate comes out empty once, then not. Prompt "p2": always empty.
    draws = {"p1": iter(["first", "  ", "second", "redrawn"]), "p2": iter([""] * 10)}

    def fake_sample(model, tokenizer, texts, add_special_tokens, count, temperature, top_p, spec):
        return [[next(draws[text]) for _ in range(count)] for text in texts], count

    monkeypatch.setattr(generate, "sample", fake_sample)
    monkeypatch.setattr(generate, "prompt_text", lambda prompt, tokenizer: prompt)
    spec = GenerateSpec(model="m", output_dir="out", prompts="p.jsonl", num_candidates=2)
    settings = {(1.0, 1.0): [0, 1]}
    tasks, _ = generate.candidate_tasks(None, Tokenizer(), [{"prompt": "p1"}, {"prompt": "p2"}], settings, "m", spec)
    assert [task["prompt"] for task in tasks] == ["p1"]
    assert [response["text"] for response in tasks[0]["responses"]] == ["first", "second"]


def test_generated_text_loses_control_characters_but_keeps_tabs_and_line_breaks():
    from training.engine.stages.generate import printable

    assert printable("a\x00b\x07c\td\ne\r\nf\x7fg") == "abc\td\ne\r\nfg"


@pytest.mark.parametrize(("as_chat", "expected_start"), [(None, "<s>user\n"), (True, "<s>user\n"), (False, "Q?")])
def test_a_chat_model_is_asked_text_prompts_as_a_user_message(tiny_model, monkeypatch, as_chat, expected_start):
    from training.engine.models import load_tokenizer
    from training.engine.stages import generate
    from training.engine.stages.generate_spec import GenerateSpec

    asked = []

    def fake_sample(model, tokenizer, texts, add_special_tokens, count, temperature, top_p, spec):
        asked.extend(texts)
        return [["an answer"] * count for _ in texts], count

    monkeypatch.setattr(generate, "sample", fake_sample)
    tokenizer = load_tokenizer(str(tiny_model))  # the tiny model has a chat template of its own
    spec = GenerateSpec(model="m", output_dir="out", prompts="p.jsonl", num_candidates=1, text_prompts_as_chat=as_chat)
    tasks, _ = generate.candidate_tasks(None, tokenizer, [{"prompt": "Q?"}], {(1.0, 1.0): [0]}, "m", spec)
    assert asked[0].startswith(expected_start) and "Q?" in asked[0]
    assert tasks[0]["prompt"] == "Q?"  # the file keeps the prompt as it was


def test_an_evaluation_stops_when_cancelled_and_keeps_no_report(tiny_model, tmp_path):
    from training.engine.events import CancelFlag

    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"Question {i}:"} for i in range(24)])
    spec = {
        "stage": "evaluate",
        "model": str(tiny_model),
        "reference_model": str(tiny_model),
        "output_dir": str(tmp_path / "eval"),
        "prompts": str(prompts),
        "max_new_tokens": 4,
        "batch_size": 4,
    }
    cancel = CancelFlag()
    cancel.request()  # as SIGTERM does: the stage stops after the batch it is on
    status, events = run_spec_in_process(spec, cancel=cancel)
    assert status == 0 and events[-1]["event"] == "cancelled" and events[-1]["checkpoint"] is None
    assert not only(events, "finished") and not (tmp_path / "eval" / "evaluation.json").exists()
