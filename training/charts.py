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


# --- several runs on shared axes, and one figure against another ----------------------------------

# Series colours (``.series-0`` ... in app.css), chosen to stay apart for common colour blindness
# (Okabe & Ito's palette); a ninth series reuses the first colour with a dashed line.
SERIES_COLOURS = 8
OVERLAY_WIDTH, OVERLAY_HEIGHT = 420, 200
AXIS_TITLE_ROOM = 14  # below the x tick labels: the x axis's name ("step")
DOTS_UP_TO = 60  # points per series drawn as hoverable dots; longer series show a line only


def overlaid_charts(
    runs: list[tuple[str, dict[str, list[tuple[int, float]]]]], *, names: list[str] | None = None, limit: int = 8
) -> list[dict[str, Any]]:
    """One chart per metric that at least one run logged, every run's curve on the same axes.

    ``runs`` is ``[(label, {metric name: [(step, value), ...]}), ...]`` in legend order; a run keeps
    its colour (``series``: its index) in every chart. ``names`` picks and orders the metrics;
    by default the most useful first, as on a run's page.
    """
    available = {name for _, by_name in runs for name, points in by_name.items() if points}
    if names is None:
        names = sorted(available, key=lambda n: (PREFERRED.index(n) if n in PREFERRED else len(PREFERRED), n))
    charts = []
    for name in (n for n in names if n in available):
        curves = [(index, label, by_name.get(name) or []) for index, (label, by_name) in enumerate(runs)]
        chart = overlaid_chart(name, curves)
        if chart is not None:
            charts.append(chart)
    return charts[:limit]


def chart_legend(entries: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The legend of ``overlaid_charts``: ``[(label, href)]`` in the order the runs were given, each
    with the colour (and dash) its curves are drawn in (``templates/training/_overlaid_charts.html``)."""
    return [
        {"series": index % SERIES_COLOURS, "dashed": index >= SERIES_COLOURS, "label": label, "href": href}
        for index, (label, href) in enumerate(entries)
    ]


def overlaid_chart(name: str, curves: list[tuple[int, str, list[tuple[int, float]]]]) -> dict[str, Any] | None:
    """Axes shared by every curve of metric ``name``; ``curves`` is ``[(series index, label, points)]``."""
    curves = [(index, label, _thin([p for p in points if math.isfinite(p[1])])) for index, label, points in curves]
    curves = [(index, label, points) for index, label, points in curves if points]
    if not curves:
        return None
    axes = Axes.fit(
        [step for _, _, points in curves for step, _ in points],
        [value for _, _, points in curves for _, value in points],
        y_name=name,
        width=OVERLAY_WIDTH,
        height=OVERLAY_HEIGHT,
    )
    lines = []
    for index, label, points in curves:
        dots = points if len(points) <= DOTS_UP_TO else [points[-1]]
        lines.append(
            {
                "series": index % SERIES_COLOURS,
                "dashed": index >= SERIES_COLOURS,
                "label": label,
                "points": " ".join(f"{axes.x(step)},{axes.y(value)}" for step, value in points),
                "dots": [
                    {
                        "x": axes.x(step),
                        "y": axes.y(value),
                        "title": f"{label} · step {step}: {format_metric(value, name)}",
                    }
                    for step, value in dots
                ],
                "last": format_metric(points[-1][1], name),
            }
        )
    return {"name": name, "lines": lines, **axes.as_context(x_name="step")}


def scatter_chart(
    x_name: str, y_name: str, points: list[dict[str, Any]], *, log_x: bool = False
) -> dict[str, Any] | None:
    """A figure (``y_name``) against a parameter (``x_name``): one dot per point, on a log axis if asked.

    Each point is ``{"x", "y", "label", "highlight": bool}``; the label is the dot's hover text
    (with both values), and highlighted dots (the best trial) are drawn apart.
    """
    usable = [
        point
        for point in points
        if is_number(point.get("x")) and is_number(point.get("y")) and (not log_x or point["x"] > 0)
    ]
    if not usable:
        return None
    transform = math.log10 if log_x else float
    axes = Axes.fit(
        [transform(point["x"]) for point in usable],
        [point["y"] for point in usable],
        y_name=y_name,
        x_name=x_name,
        x_format=(lambda value: format_metric(10**value, x_name)) if log_x else None,
        width=OVERLAY_WIDTH,
        height=OVERLAY_HEIGHT,
    )
    dots = [
        {
            "x": axes.x(transform(point["x"])),
            "y": axes.y(point["y"]),
            "highlight": bool(point.get("highlight")),
            "title": f"{point.get('label', '')} · {x_name} {format_metric(point['x'], x_name)}, "
            f"{y_name} {format_metric(point['y'], y_name)}".lstrip(" ·"),
        }
        for point in usable
    ]
    # Highlighted dots last, so they are drawn on top.
    dots.sort(key=lambda dot: dot["highlight"])
    return {"name": y_name, "x_name": x_name, "log_x": log_x, "dots": dots, **axes.as_context(x_name=x_name)}


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Axes:
    """A plot area sized around its tick labels, and the maps from data to SVG coordinates.

    Three ticks on each axis (low, middle, high), in the metric's format; the x axis's name under
    its ticks and the y axis's name in the caption (``as_context``).
    """

    def __init__(self, *, x_range, y_range, x_labels, y_labels, width: int, height: int) -> None:
        self.low_x, self.high_x = x_range
        self.low_y, self.high_y = y_range
        self.width, self.height = width, height
        left = max(MIN_LEFT, math.ceil(max(label_width(label) for _, label in y_labels) + TICK_GAP + 2))
        right = max(MIN_RIGHT, math.ceil(label_width(x_labels[-1][1]) / 2 + 2))
        self.plot = {"left": left, "right": width - right, "top": TOP, "bottom": height - BOTTOM - AXIS_TITLE_ROOM}
        self.x_labels, self.y_labels = x_labels, y_labels

    @classmethod
    def fit(
        cls,
        xs: list[float],
        ys: list[float],
        *,
        y_name: str,
        x_name: str = "step",
        x_format=None,
        width: int,
        height: int,
    ) -> Axes:
        low_x, high_x = _padded(min(xs), max(xs))
        low_y, high_y = _padded(min(ys), max(ys))
        if x_name == "step":
            # Whole steps only, each once (a single step gets a single tick).
            ticks = sorted({round(value) for value in (min(xs), (min(xs) + max(xs)) / 2, max(xs))})
            x_labels = [(float(step), str(step)) for step in ticks]
        elif x_format is None:
            x_labels = _tick_labels(x_name, (low_x, (low_x + high_x) / 2, high_x))
        else:
            x_labels = [(value, x_format(value)) for value in (low_x, (low_x + high_x) / 2, high_x)]
        y_labels = _tick_labels(y_name, (high_y, (low_y + high_y) / 2, low_y))
        return cls(
            x_range=(low_x, high_x),
            y_range=(low_y, high_y),
            x_labels=x_labels,
            y_labels=y_labels,
            width=width,
            height=height,
        )

    def x(self, value: float) -> float:
        span = self.high_x - self.low_x
        return round(self.plot["left"] + (value - self.low_x) / span * (self.plot["right"] - self.plot["left"]), 1)

    def y(self, value: float) -> float:
        span = self.high_y - self.low_y
        return round(self.plot["bottom"] - (value - self.low_y) / span * (self.plot["bottom"] - self.plot["top"]), 1)

    def as_context(self, *, x_name: str) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "plot": self.plot,
            "y_ticks": [{"y": self.y(value), "label": label} for value, label in self.y_labels],
            "y_label_x": self.plot["left"] - TICK_GAP,
            "x_ticks": [{"x": self.x(value), "label": label} for value, label in self.x_labels],
            "label_y": self.plot["bottom"] + 14,
            "x_title": x_name,
            "x_title_x": round((self.plot["left"] + self.plot["right"]) / 2, 1),
            "x_title_y": self.height - 4,
        }


def _padded(low: float, high: float) -> tuple[float, float]:
    """A range with room when every value is the same (a flat line, or a single run)."""
    if low == high:
        return low - (abs(low) * 0.1 or 1.0), high + (abs(high) * 0.1 or 1.0)
    return low, high
