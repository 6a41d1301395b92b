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
