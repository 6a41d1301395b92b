"""What a run's training cost (trainable parameters, peak memory, time per step, throughput), shown for people."""

from __future__ import annotations

import pytest

from tests.training.conftest import first_run
from training.formatting import cost_lines, format_metric
from training.models import JobStatus


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("peak_memory_bytes", 512, "512 B"),
        ("peak_memory_bytes", 300 * 2**20, "300 MiB"),
        ("peak_memory_bytes", 1.5 * 2**30, "1.50 GiB"),
        ("train_seconds_per_step", 0.53217, "0.532 s/step"),
        ("train_seconds_per_step", 12.0, "12.0 s/step"),
        ("train_tokens_per_second", 1234.5, "1.23 k tokens/s"),
        ("train_tokens_per_second", 87.26, "87.3 tokens/s"),
        ("trainable_percent", 0.91234, "0.912%"),
        ("trainable_percent", 100, "100%"),
        ("eval/peak_memory_bytes", 2**20, "1.00 MiB"),
    ],
)
def test_cost_figures_are_formatted_with_their_units(name, value, shown):
    assert format_metric(value, name) == shown


def test_cost_lines_list_what_a_run_reported_in_order():
    metrics = {
        "train_loss": 1.2,
        "train_tokens_per_second": 2000.0,
        "peak_memory_bytes": 3 * 2**30,
        "train_seconds_per_step": 0.25,
        "trainable_parameters": 1_230_000,
        "total_parameters": 134_600_000,
        "trainable_percent": 0.9146,
    }
    assert cost_lines(metrics) == [
        ("Trainable parameters", "1.23 M of 135 M (0.915%)"),
        ("Peak memory", "3.00 GiB"),
        ("Time per step", "0.250 s/step"),
        ("Throughput", "2.00 k tokens/s"),
    ]
    assert cost_lines({}) == []
    assert cost_lines({"peak_memory_bytes": 2**20}) == [("Peak memory", "1.00 MiB")]


def test_the_run_page_shows_the_training_cost_once_the_run_has_finished(training_round, manager_client):
    run = first_run(training_round)
    page = manager_client.get(f"/training/runs/{run.pk}/").content.decode()
    assert "Training cost" not in page
    run.status = JobStatus.SUCCEEDED
    run.final_metrics = {
        "trainable_parameters": 4_096,
        "total_parameters": 40_960,
        "trainable_percent": 10.0,
        "peak_memory_bytes": 700 * 2**20,
        "train_seconds_per_step": 0.04,
        "train_tokens_per_second": 512.0,
    }
    run.save()
    for url in (f"/training/runs/{run.pk}/", f"/training/runs/{run.pk}/live/"):
        page = manager_client.get(url).content.decode()
        assert "Training cost" in page
        for text in ("4.10 k of 41.0 k (10.0%)", "700 MiB", "0.0400 s/step", "512 tokens/s"):
            assert text in page, text
