"""The evaluate stage keeps each held-out item's outcome (``outcomes.jsonl``), not only the aggregates: the
pages slice a reward model's mistakes and list the prompts where a policy lost to its base from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.engine.conftest import marker_preferences, only, run_spec_in_process, write_jsonl


def read_outcomes(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "outcomes.jsonl").read_text().splitlines()]


def test_it_writes_each_pairs_ids_margin_and_outcome_for_a_reward_model(tiny_model, tmp_path):
    pairs = [
        {**pair, "task_id": str(100 + i), "group_id": f"g{i}", "agreement": 1.0 if i % 2 else 0.5, "n_votes": 2}
        for i, pair in enumerate(marker_preferences(6, seed=1))
    ]
    preferences = write_jsonl(tmp_path / "prefs.jsonl", pairs)
    spec = {"stage": "evaluate", "model": str(tiny_model), "kind": "reward", "preferences": str(preferences)}
    status, events = run_spec_in_process({**spec, "output_dir": str(tmp_path / "rm")})
    assert status == 0, events[-1]
    report = only(events, "finished")[0]["metrics"]["report"]
    assert report["outcomes"] == {"file": "outcomes.jsonl", "pairs": 6, "prompts": 0}
    rows = read_outcomes(tmp_path / "rm")
    assert [row["task_id"] for row in rows] == [str(100 + i) for i in range(6)]
    for row, pair in zip(rows, pairs, strict=True):
        assert row["kind"] == "pair" and row["group_id"] == pair["group_id"] and row["n_votes"] == 2
        assert (row["prompt"], row["chosen"], row["rejected"]) == (pair["prompt"], pair["chosen"], pair["rejected"])
        assert row["agreement"] == pair["agreement"]
        assert row["correct"] == (1.0 if row["margin"] > 0 else 0.5 if row["margin"] == 0 else 0.0)
    # The aggregate is the mean of the outcomes written.
    accuracy = report["figures"][0]["new"]
    assert accuracy == pytest.approx(sum(row["correct"] for row in rows) / 6)


def test_it_writes_each_prompts_answers_rewards_and_winner_for_a_policy(tiny_model, tmp_path):
    prompts = write_jsonl(
        tmp_path / "prompts.jsonl",
        [{"prompt": f"Question {i}:", "group_id": f"g{i}", "task_id": str(i)} for i in range(5)],
    )
    spec = {
        "stage": "evaluate",
        "model": str(tiny_model),
        "reference_model": str(tiny_model),
        "reward_model": str(tiny_model),
        "prompts": str(prompts),
        "max_new_tokens": 4,
        "output_dir": str(tmp_path / "policy"),
    }
    status, events = run_spec_in_process(spec)
    assert status == 0, events[-1]
    report = only(events, "finished")[0]["metrics"]["report"]
    assert report["outcomes"] == {"file": "outcomes.jsonl", "pairs": 0, "prompts": 5}
    rows = read_outcomes(tmp_path / "policy")
    assert [(row["kind"], row["group_id"], row["task_id"]) for row in rows] == [
        ("prompt", f"g{i}", str(i)) for i in range(5)
    ]
    for row in rows:
        assert isinstance(row["new"], str) and isinstance(row["base"], str)
        expected = "new" if row["new_reward"] > row["base_reward"] else "base"
        if row["new_reward"] == row["base_reward"]:
            expected = "tie"
        assert row["winner"] == expected
    wins = [1.0 if row["winner"] == "new" else 0.5 if row["winner"] == "tie" else 0.0 for row in rows]
    win_rate = next(figure for figure in report["figures"] if figure["name"] == "win_rate")
    assert win_rate["new"] == pytest.approx(sum(wins) / 5)
