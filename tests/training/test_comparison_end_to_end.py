"""Every adapter method the engine offers (qlora aside: it needs CUDA), compared on one snapshot with
the tiny model: each variant's round runs through the real worker, and the page shows the runs' numbers."""

from __future__ import annotations

import csv
import io

import pytest

from tests.training.conftest import FAST_SETTINGS
from training.comparisons import TRAINING_COLUMNS
from training.models import Comparison, JobStatus, Round
from training.services.comparisons import adapter_variants

COLUMNS = {column.key: column for column in TRAINING_COLUMNS}

pytestmark = pytest.mark.django_db(transaction=True)  # the worker's heartbeat thread has its own connection


def test_it_compares_every_adapter_method_on_one_snapshot(
    manager_api, manager_client, tiny_model, preference_snapshot, worker
):
    methods = [method for method in adapter_variants() if method != "qlora"]
    assert {"lora", "ia3", "full", "freeze"} <= set(methods)
    shared = {name: value for name, value in FAST_SETTINGS.items() if name not in ("adapter", "max_steps")}
    launched = manager_api.post(
        "/api/training/comparisons/",
        {
            "kind": "adapters",
            "stage": "sft",
            "variants": methods,
            "base_model": tiny_model.pk,
            "dataset": preference_snapshot.pk,
            "seed": 11,
            "max_steps": 2,
            # One freezable layer of the tiny model's two, so freeze trains fewer weights than full.
            "settings": {**shared, "advanced": {"adapter": {"freeze_last_n_layers": 1}}},
            # Each variant's evaluation would double the engine starts; the page tests cover its figures.
            "evaluate": False,
        },
        format="json",
    )
    assert launched.status_code == 201, launched.json()
    comparison = Comparison.objects.get(pk=launched.json()["id"])
    assert len(comparison.rounds.all()) == len(methods)

    while worker.run_once():
        pass

    rounds = {round_.variant: round_ for round_ in comparison.rounds.all()}
    for method, round_ in rounds.items():
        runs = list(round_.runs.order_by("position"))
        assert [run.status for run in runs] == [JobStatus.SUCCEEDED], (method, [run.error for run in runs])
        assert round_.status == Round.Status.SUCCEEDED
        assert runs[0].spec["adapter"]["method"] == method and runs[0].spec["seed"] == 11
        assert runs[0].spec["max_steps"] == 2 and runs[0].step == 2

    trained = {method: rounds[method].runs.get(position=0).final_metrics for method in methods}
    full = trained["full"]["trainable_parameters"]
    for method in methods:
        assert trained[method]["trainable_parameters"] > 0
        if method != "full":
            assert trained[method]["trainable_parameters"] < full, method

    # The report: one row per method with its run's own numbers, on the page, in the API and the CSV.
    page = manager_client.get(f"/training/comparisons/{comparison.pk}/").content.decode()
    api_rows = {
        row["variant"]: row for row in manager_api.get(f"/api/training/comparisons/{comparison.pk}/").json()["rows"]
    }
    csv_rows = {
        row["variant"]: row
        for row in csv.DictReader(
            io.StringIO(manager_client.get(f"/training/comparisons/{comparison.pk}/?format=csv").content.decode())
        )
    }
    for method in methods:
        metrics = trained[method]
        row = page.split(f'data-variant="{method}"')[1].split("</tr>")[0]
        for name in ("trainable_parameters", "trainable_percent", "train_loss"):
            assert COLUMNS[name].text(metrics[name]) in row, (method, name)
            assert f'data-value="{metrics[name]}"' in row
            assert api_rows[method]["values"][name] == metrics[name]
            assert float(csv_rows[method][name]) == metrics[name]
    assert "trainable_parameters" in api_rows[min(methods, key=lambda m: trained[m]["trainable_parameters"])]["best"]
    assert page.count("series-line series-") >= len(methods)  # a curve per method (and a legend swatch)
