"""Server-side SVG chart geometry for manager pages (no JS charting, nothing from a CDN)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.utils import timezone

# SVG user units; the drawing scales to the width of its container.
CHART_WIDTH = 720
CHART_HEIGHT = 180
CHART_LEFT = 36  # room for the y-axis labels
CHART_TOP = 10  # room for the top label
CHART_BOTTOM = 22  # room for the hour labels
# Room for a label is sized from its text: ``.chart-axis`` is 11px in the SVG's units, and a digit of
# common sans-serif fonts is at most ~0.64 em wide (DejaVu Sans, the fallback on Linux, the widest).
CHAR_WIDTH = 0.66 * 11
Y_LABEL_GAP = 6  # the templates end a y-axis label this far left of the plot


def label_width(label: str) -> float:
    """The widest ``label`` can be drawn as an axis label, in the SVG's units."""
    return len(label) * CHAR_WIDTH


def hour_chart(per_hour: list[dict[str, Any]]) -> dict[str, Any]:
    """Bar geometry for an SVG chart of ``campaign_stats``' judgements per hour, oldest first."""
    peak = max((point["judgements"] for point in per_hour), default=0)
    left = max(CHART_LEFT, math.ceil(label_width(str(peak)) + Y_LABEL_GAP + 2))
    plot_width = CHART_WIDTH - left
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    baseline = CHART_TOP + plot_height
    slot = plot_width / max(len(per_hour), 1)
    bars = []
    for index, point in enumerate(per_hour):
        hour = timezone.localtime(datetime.fromisoformat(point["hour"]))
        height = plot_height * point["judgements"] / max(peak, 1)
        bars.append(
            {
                "x": round(left + index * slot + slot * 0.15, 1),
                "y": round(baseline - height, 1),
                "width": round(slot * 0.7, 1),
                "height": round(height, 1),
                "count": point["judgements"],
                "hour": hour.strftime("%H:00"),
                "day": hour.strftime("%a %d %b"),
                # Every sixth hour gets a label under its bar.
                "label_x": round(left + index * slot + slot / 2, 1) if index % 6 == 0 else None,
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": left,
        "top": CHART_TOP,
        "baseline": baseline,
        "middle_x": left + plot_width / 2,
        "middle_y": CHART_TOP + plot_height / 2,
        "label_y": CHART_HEIGHT - 6,
        "peak": peak,
        "bars": bars,
        "total": sum(point["judgements"] for point in per_hour),
    }


def _scale(value: float, low: float, high: float, start: float, end: float) -> float:
    span = (high - low) or 1.0
    return round(start + (value - low) / span * (end - start), 1)


def line_chart(points: list[tuple[str, float | None]], *, low: float = -0.2, high: float = 1.0) -> dict[str, Any]:
    """A polyline over labelled x positions; None values break nothing, they are skipped.

    The x labels are centred under their points, so the first and last leave room for half their width.
    """
    labels = [label for label, _ in points] or [""]
    left = max(CHART_LEFT, math.ceil(label_width(labels[0]) / 2 + 2))
    right = math.ceil(label_width(labels[-1]) / 2 + 2)
    plot_width = CHART_WIDTH - left - right
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    baseline = CHART_TOP + plot_height
    step = plot_width / max(len(points) - 1, 1)
    drawn = [
        {
            "x": round(left + index * step, 1),
            "y": _scale(value, low, high, baseline, CHART_TOP),
            "label": label,
            "value": round(value, 3),
        }
        for index, (label, value) in enumerate(points)
        if value is not None
    ]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": left,
        "top": CHART_TOP,
        "baseline": baseline,
        "label_y": CHART_HEIGHT - 6,
        "points": drawn,
        "polyline": " ".join(f"{p['x']},{p['y']}" for p in drawn),
        "zero_y": _scale(0.0, low, high, baseline, CHART_TOP),
        "one_y": _scale(1.0, low, high, baseline, CHART_TOP),
    }


def scatter_chart(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Reviewers as dots: x and y are shares from 0 to 1; flagged ones are marked."""
    plot_height = CHART_HEIGHT * 1.6 - CHART_TOP - CHART_BOTTOM
    baseline = CHART_TOP + plot_height
    return {
        "width": CHART_WIDTH,
        "height": round(CHART_HEIGHT * 1.6),
        "left": CHART_LEFT,
        "top": CHART_TOP,
        "baseline": baseline,
        "right": CHART_WIDTH,
        "label_y": round(CHART_HEIGHT * 1.6) - 6,
        "dots": [
            {
                **point,
                "cx": _scale(point["x"], 0.0, 1.0, CHART_LEFT + 6, CHART_WIDTH - 6),
                "cy": _scale(point["y"], 0.0, 1.0, baseline - 6, CHART_TOP + 6),
                # Labels of dots near the right edge go to their left, to stay in the picture.
                "anchor": "end" if point["x"] > 0.8 else "start",
                "dx": -10 if point["x"] > 0.8 else 10,
            }
            for point in points
        ],
    }


# Head-to-head heat map: one square per (row model, column opponent).
HEATMAP_CELL = 64
HEATMAP_MAX_LABEL = 28  # characters of a model name drawn; the whole name is in the cell titles
HEATMAP_LABEL_ANGLE = 40  # degrees the column labels are turned, so long names fit above narrow columns
# Blue where the row model wins more, orange where it loses more, white at 0.5.
_WIN_COLOUR, _LOSS_COLOUR, _EVEN_COLOUR = (47, 91, 211), (194, 65, 12), (255, 255, 255)


def _short(name: str) -> str:
    return name if len(name) <= HEATMAP_MAX_LABEL else name[: HEATMAP_MAX_LABEL - 1] + "…"


def _blend(share: float) -> tuple[str, bool]:
    """The fill for a win rate (0..1), and whether its text needs to be light to read on it."""
    towards, weight = (_WIN_COLOUR, 2 * share - 1) if share >= 0.5 else (_LOSS_COLOUR, 1 - 2 * share)
    rgb = [round(even + (far - even) * weight) for even, far in zip(_EVEN_COLOUR, towards, strict=True)]
    return f"rgb({rgb[0]}, {rgb[1]}, {rgb[2]})", weight > 0.55


def win_rate_heatmap(models: list[str], head_to_head: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometry of the head-to-head matrix: row model's win rate against the column model, per cell.

    ``head_to_head`` rows are ``arena.head_to_head``'s (``model, opponent, n, win_rate``, ...).
    Cells of pairs that never met, and the diagonal, are drawn empty.
    """
    by_pair = {(row["model"], row["opponent"]): row for row in head_to_head}
    longest = max((label_width(_short(name)) for name in models), default=0)
    left = math.ceil(longest + Y_LABEL_GAP + 4)
    # Turned column labels rise by sin(angle) of their length, plus the font's height.
    top = math.ceil(longest * math.sin(math.radians(HEATMAP_LABEL_ANGLE)) + 16)
    size = HEATMAP_CELL
    cells = []
    for row_index, model in enumerate(models):
        for column_index, opponent in enumerate(models):
            x, y = left + column_index * size, top + row_index * size
            cell: dict[str, Any] = {"x": x, "y": y, "cx": x + size / 2, "cy": y + size / 2, "model": model}
            cell["opponent"] = opponent
            record = by_pair.get((model, opponent))
            if model == opponent:
                cell |= {"fill": "#e4e7ed", "empty": True, "diagonal": True}
            elif record is None or not record["n"]:
                cell |= {"fill": "#f6f7f9", "empty": True, "diagonal": False}
            else:
                fill, light = _blend(record["win_rate"])
                cell |= {
                    "fill": fill,
                    "light_text": light,
                    "empty": False,
                    "percent": round(100 * record["win_rate"]),
                    "n": record["n"],
                    "wins": record["wins"],
                    "losses": record["losses"],
                    "ties": record["ties"],
                    "both_bad": record["both_bad"],
                }
            cells.append(cell)
    # The last column's label runs right of the grid by cos(angle) of its length.
    overhang = longest * math.cos(math.radians(HEATMAP_LABEL_ANGLE)) - size / 2
    width = math.ceil(left + size * len(models) + max(overhang, 0) + 8)
    height = top + size * len(models) + 8
    return {
        "width": width,
        "height": height,
        "cell": size,
        "rows": [
            {"name": name, "label": _short(name), "x": left - Y_LABEL_GAP, "y": top + (index + 0.5) * size}
            for index, name in enumerate(models)
        ],
        "columns": [
            {"name": name, "label": _short(name), "x": left + (index + 0.5) * size, "y": top - 8}
            for index, name in enumerate(models)
        ],
        "angle": -HEATMAP_LABEL_ANGLE,
        "cells": cells,
    }
