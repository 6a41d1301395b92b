"""The evaluate stage's held-out files keep the ids of each row (task, prompt group, votes), so its
per-item outcomes can be joined back to the tasks they came from."""

from __future__ import annotations

import json
from pathlib import Path

from training import stage_data


def test_it_keeps_each_held_out_rows_ids(tmp_path):
    rows = [
        {"prompt": "P1", "chosen": "a", "rejected": "b", "agreement": 1.0, "n_votes": 3, "group_id": "g1",
         "task_id": "11", "split": "test"},
        {"prompt": "P2", "chosen": "c", "rejected": "d", "agreement": 0.5, "n_votes": 2, "group_id": "g2",
         "task_id": "12", "split": "test"},
        {"prompt": "P3", "chosen": "e", "rejected": "f", "agreement": 1.0, "n_votes": 1, "group_id": "g3",
         "task_id": "13", "split": "train"},
    ]  # fmt: skip
    snapshot = tmp_path / "snapshot.jsonl"
    snapshot.write_text("".join(json.dumps(row) + "\n" for row in rows))
    files = stage_data.export_evaluation_files(kind="preference", snapshot=snapshot, directory=tmp_path / "data")
    pairs = [json.loads(line) for line in Path(files["preferences"]).read_text().splitlines()]
    assert [(p["task_id"], p["group_id"], p["n_votes"], p["agreement"]) for p in pairs] == [
        ("11", "g1", 3, 1.0),
        ("12", "g2", 2, 0.5),
    ]
    prompts = [json.loads(line) for line in Path(files["prompts"]).read_text().splitlines()]
    assert [(p["prompt"], p["task_id"], p["group_id"]) for p in prompts] == [("P1", "11", "g1"), ("P2", "12", "g2")]
