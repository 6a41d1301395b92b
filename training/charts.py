"""Server-side SVG geometry for metric curves (loss, reward, KL, accuracy) on the run page.

No JS charting library and nothing from a CDN: the page re-fetches the rendered SVG when new
points arrive over its websocket.
"""

from __future__ import annotations

import math
from typing import Any

from training.formatting import format_metric

WIDTH, HEIGHT = 360, 150
TOP, BOTTOM = 10, 22
# The axis labels' room is sized from the labels themselves (``.chart-axis`` is 11px, in the SVG's
# units): a digit or lower-case letter of common sans-serif fonts is at most ~0.64 em wide
# (DejaVu Sans, the fallback on Linux, has the widest digits).
AXIS_FONT_PX = 11
CHAR_WIDTH = 0.66 * AXIS_FONT_PX
TICK_GAP = 4  # between a y label and the plot (the template puts the label this far left of it)
MIN_LEFT, MIN_RIGHT = 24, 8
# Metrics people look at first, in this order; the others follow by name.
PREFERRED = (
    "loss",
    "eval_loss",
    "rewards/accuracies",
    "eval_rewards/accuracies",
    "rewards/margins",
    "eval_rewards/margins",
    "accuracy",
    "eval_accuracy",
    "mean_reward",
    "objective/scores",
    "kl",
    "objective/kl",
    "value_loss",
    "loss/value_avg",
    "learning_rate",
    "grad_norm",
)
MAX_POINTS = 400  # per curve; longer series are thinned evenly (the last point is always kept)


def metric_charts(series: dict[str, dict[str, list[tuple[int, float]]]], *, limit: int = 8) -> list[dict[str, Any]]:
    """One chart per metric (training and evaluation points of a name share a chart), most useful first."""
    names: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for kind, by_name in series.items():
        for name, points in by_name.items():
            names.setdefault(name, {})[kind] = points
    order = sorted(names, key=lambda name: (PREFERRED.index(name) if name in PREFERRED else len(PREFERRED), name))
    charts = [chart for chart in (series_chart(name, names[name]) for name in order) if chart is not None]
    return charts[:limit]


def series_chart(name: str, curves: dict[str, list[tuple[int, float]]]) -> dict[str, Any] | None:
    """Axes, ticks and one polyline per kind (``train``, ``eval``) for the metric ``name``."""
    curves = {kind: _thin(points) for kind, points in curves.items() if points}
    if not curves:
        return None
    steps = [step for points in curves.values() for step, _ in points]
    values = [value for points in curves.values() for _, value in points if math.isfinite(value)]
    if not values:
        return None
    low_step, high_step = min(steps), max(steps)
    low, high = min(values), max(values)
    if low == high:
        low, high = low - (abs(low) * 0.1 or 1.0), high + (abs(high) * 0.1 or 1.0)
    y_labels = _tick_labels(name, (high, (low + high) / 2, low))
    x_labels = [(step, str(step)) for step in sorted({low_step, high_step})]
    # The y labels end TICK_GAP left of the plot; the last x label is centred on the plot's right edge.
    left = max(MIN_LEFT, math.ceil(max(label_width(label) for _, label in y_labels) + TICK_GAP + 2))
    right = max(MIN_RIGHT, math.ceil(label_width(x_labels[-1][1]) / 2 + 2))
    plot = {"left": left, "right": WIDTH - right, "top": TOP, "bottom": HEIGHT - BOTTOM}

    def x(step: float) -> float:
        span = (high_step - low_step) or 1
        return round(plot["left"] + (step - low_step) / span * (plot["right"] - plot["left"]), 1)

    def y(value: float) -> float:
        return round(plot["bottom"] - (value - low) / (high - low) * (plot["bottom"] - plot["top"]), 1)

    lines = [
        {
            "kind": kind,
            "points": " ".join(f"{x(step)},{y(value)}" for step, value in points if math.isfinite(value)),
            "last": {"x": x(points[-1][0]), "y": y(points[-1][1]), "value": format_metric(points[-1][1], name)},
        }
        for kind, points in sorted(curves.items())
        if any(math.isfinite(value) for _, value in points)
    ]
    last_train = curves.get("train") or next(iter(curves.values()))
    return {
        "name": name,
        "width": WIDTH,
        "height": HEIGHT,
        "plot": plot,
        "lines": lines,
        "y_ticks": [{"y": y(value), "label": label} for value, label in y_labels],
        "y_label_x": left - TICK_GAP,
        "x_ticks": [{"x": x(step), "label": label} for step, label in x_labels],
        "label_y": HEIGHT - 6,
        "latest": format_metric(last_train[-1][1], name),
    }


def _tick_labels(name: str, values: tuple[float, ...]) -> list[tuple[float, str]]:
    """Tick labels in the metric's format, with as many digits as it takes to tell them apart
    (a loss between 0.6931 and 0.6934 would read 0.693 three times)."""
    for digits in range(3, 8):
        labels = [format_metric(value, name, digits=digits) for value in values]
        if len(set(labels)) == len(labels):
            break
    return list(zip(values, labels, strict=True))


def _thin(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(points) <= MAX_POINTS:
        return points
    stride = len(points) / (MAX_POINTS - 1)
    return [points[int(index * stride)] for index in range(MAX_POINTS - 1)] + [points[-1]]


def label_width(label: str) -> float:
    """The widest an axis label can be drawn, in the SVG's units."""
    return len(label) * CHAR_WIDTH
