"""Template filters for training pages: ``{% load training_format %}``.

- ``{{ value|metric:name }}``: a metric value for people (``training.formatting.format_metric``).
- ``{{ run.eta_s|eta }}``: time left for people (``ETA 12 min``).
- ``{{ run.log_tail|terminal_text }}``: engine output as a terminal shows it, without ANSI escapes.
"""

from __future__ import annotations

from django import template

from training.formatting import format_eta, format_metric, terminal_text

register = template.Library()


@register.filter(name="metric")
def metric(value: object, name: str = "") -> str:
    return format_metric(value, name)


@register.filter(name="terminal_text")
def terminal_text_filter(text: str) -> str:
    return terminal_text(text or "")


@register.filter(name="eta")
def eta(seconds: float | None) -> str:
    return format_eta(seconds)
