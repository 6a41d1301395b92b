"""Template filters for training pages: ``{% load training_format %}``.

- ``{{ value|metric:name }}``: a metric value for people (``training.formatting.format_metric``).
- ``{{ run.eta_s|eta }}``: time left for people (``ETA 12 min``).
- ``{{ run.log_tail|terminal_text }}``: engine output as a terminal shows it, without ANSI escapes.
- ``{{ figure.new|figure:figure.unit }}`` and ``{{ figure.change|change:figure.unit }}``: an
  evaluation figure and its change (``93.3%``, ``+12.5 pts``).
- ``{{ pair.prompt|message_text }}``: a prompt or answer (text, or a conversation) as plain text.
"""

from __future__ import annotations

from django import template

from training.formatting import (
    format_change,
    format_eta,
    format_figure,
    format_metric,
    message_text,
    terminal_text,
)
from training.models import is_metric_value
from training.selectors import worker_seen_recently

register = template.Library()


@register.filter(name="metric")
def metric(value: object, name: str = "") -> str:
    return format_metric(value, name)


@register.filter(name="metric_items")
def metric_items(values: dict) -> list[tuple[str, object]]:
    """A model's stored results as (name, number) rows: the verdict and other reports are not numbers."""
    return [(name, value) for name, value in (values or {}).items() if is_metric_value(value)]


@register.filter(name="terminal_text")
def terminal_text_filter(text: str) -> str:
    return terminal_text(text or "")


@register.filter(name="eta")
def eta(seconds: float | None) -> str:
    return format_eta(seconds)


@register.filter(name="figure")
def figure(value: float | None, unit: str) -> str:
    return format_figure(value, unit)


@register.filter(name="change")
def change(value: float | None, unit: str) -> str:
    return format_change(value, unit)


@register.filter(name="message_text")
def message_text_filter(value: object) -> str:
    return message_text(value)


@register.inclusion_tag("training/_no_worker.html")
def no_worker_notice() -> dict[str, bool]:
    """A warning where queued work is shown and no worker is running to take it (one query)."""
    return {"missing": not worker_seen_recently()}
