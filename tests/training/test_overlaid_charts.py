"""Charts of several runs on shared axes, and of a figure against a parameter (comparisons, sweeps)."""

from __future__ import annotations

import math

from training.charts import OVERLAY_WIDTH, label_width, overlaid_charts, scatter_chart


def test_each_run_keeps_its_colour_in_every_chart_and_runs_share_the_axes():
    charts = overlaid_charts(
        [
            ("lora", {"loss": [(1, 0.7), (2, 0.5)], "eval_loss": [(2, 0.66)]}),
            ("full", {"loss": [(1, 0.7), (4, 0.2)]}),
            ("ia3", {"eval_loss": [(2, 0.6)]}),
        ]
    )
    assert [chart["name"] for chart in charts] == ["loss", "eval_loss"]
    loss, eval_loss = charts
    assert [(line["series"], line["label"]) for line in loss["lines"]] == [(0, "lora"), (1, "full")]
    assert [(line["series"], line["label"]) for line in eval_loss["lines"]] == [(0, "lora"), (2, "ia3")]
    lora, full = loss["lines"]
    # The same value at the same step lands on the same spot for both runs: one pair of axes.
    assert lora["points"].split()[0] == full["points"].split()[0]
    assert [tick["label"] for tick in loss["x_ticks"]] == ["1", "2", "4"]
    assert lora["dots"][-1]["title"] == "lora · step 2: 0.500"


def test_a_metric_at_one_step_gets_one_tick_and_non_finite_points_are_left_out():
    (chart,) = overlaid_charts([("a", {"eval_loss": [(3, 0.6), (4, math.nan)]}), ("b", {"eval_loss": [(3, 0.5)]})])
    assert [tick["label"] for tick in chart["x_ticks"]] == ["3"]
    assert all("nan" not in line["points"] for line in chart["lines"])
    assert overlaid_charts([("a", {"loss": []})]) == []


def test_names_pick_and_order_the_metrics():
    runs = [("a", {"loss": [(1, 1.0)], "grad_norm": [(1, 2.0)], "kl": [(1, 0.1)]})]
    assert [chart["name"] for chart in overlaid_charts(runs, names=["kl", "loss", "missing"])] == ["kl", "loss"]


def test_a_scatter_on_a_log_axis_labels_its_ticks_in_the_parameters_units_and_draws_the_best_on_top():
    chart = scatter_chart(
        "learning_rate",
        "eval_loss",
        [
            {"x": 1e-5, "y": 0.6, "label": "trial 0", "highlight": True},
            {"x": 1e-3, "y": 0.4, "label": "trial 1"},
            {"x": -1.0, "y": 0.1, "label": "not on a log axis"},
            {"x": 1e-4, "y": None, "label": "pruned, no value"},
        ],
        log_x=True,
    )
    assert [tick["label"] for tick in chart["x_ticks"]] == ["1.00e-05", "1.00e-04", "1.00e-03"]
    assert len(chart["dots"]) == 2
    assert chart["dots"][-1]["highlight"] and chart["dots"][-1]["title"].startswith("trial 0 ·")
    for tick in chart["x_ticks"]:
        assert tick["x"] + label_width(tick["label"]) / 2 <= OVERLAY_WIDTH
    for tick in chart["y_ticks"]:
        assert chart["y_label_x"] - label_width(tick["label"]) >= 0
    assert scatter_chart("r", "loss", [{"x": 1, "y": math.inf}]) is None
