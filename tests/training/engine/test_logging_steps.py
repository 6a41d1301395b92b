"""Short runs log every step: without ``logging_steps`` metrics come every 1% of the run; a given value wins."""

from __future__ import annotations

from tests.training.engine.conftest import only, run_spec_in_process, sft_rows, write_jsonl


def sft_spec(tiny_model, tmp_path, **fields) -> dict:
    dataset = write_jsonl(tmp_path / "sft.jsonl", sft_rows(10, seed=0))
    # 10 rows, 2 per step, one epoch, nothing held out: a 5-step run whose length the Trainer works out.
    return {
        "stage": "sft",
        "model": str(tiny_model),
        "output_dir": str(tmp_path / "out"),
        "dataset": str(dataset),
        "eval_fraction": 0.0,
        "batch_size": 2,
        "max_length": 32,
        "save_steps": 100,
        **fields,
    }


def loss_steps(events: list[dict]) -> list[int]:
    return [event["step"] for event in only(events, "metrics") if "loss" in event]


def test_it_logs_every_step_of_a_short_run_by_default(tiny_model, tmp_path):
    status, events = run_spec_in_process(sft_spec(tiny_model, tmp_path))
    assert status == 0
    assert only(events, "finished")[0]["metrics"]["global_step"] == 5
    assert loss_steps(events) == [1, 2, 3, 4, 5]


def test_a_given_logging_steps_wins(tiny_model, tmp_path):
    status, events = run_spec_in_process(sft_spec(tiny_model, tmp_path, logging_steps=2))
    assert status == 0
    assert loss_steps(events) == [1, 2, 4]
