"""Numbers and engine output made fit for people: one set of rules for every page that shows them.

``format_metric`` is used by the run page's charts (axis ticks, latest values), the round page's
metric lines and the models page, through the ``metric`` template filter
(``training.templatetags.training_format``). Live updates re-fetch those fragments as HTML, so the
browser never formats a metric itself and the rules stay in this one place.

Training-cost figures get their units by name: ``peak_memory_bytes`` in MiB/GiB, ``*_seconds_per_step``
in s/step, ``*_tokens_per_second`` in tokens/s, ``trainable_percent`` in %; ``cost_lines`` lists them
for the run page.

``format_learning_rate`` writes a learning-rate setting as people type one (``2e-4``), and
``format_eta`` the time left (``ETA 12 min``).

``terminal_text`` turns what a progress bar (tqdm) wrote to a terminal into the text a terminal
would show: colour and cursor escapes removed, and each line at the last state a carriage return
left it in.
"""

from __future__ import annotations

import math
import re

# Metrics that live on a log scale (a learning rate of 1e-4 or 5e-7): shown in scientific notation.
RATE_NAMES = ("learning_rate", "lr")
# Above this, a value gets a unit suffix: 4884480 -> "4.88 M".
SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))
SIGNIFICANT_DIGITS = 3


def format_metric(value: object, name: str = "", *, digits: int = SIGNIFICANT_DIGITS) -> str:
    """A metric value with sensible precision for people.

    - learning rates: ``1.00e-04``;
    - whole numbers below 1000 as they are (``3``), larger ones with a unit (``4.88 M``, ``12.3 k``);
    - other values with three significant digits (loss ``0.693``, accuracy ``0.770``), and
      scientific notation below 0.001 (``2.50e-05``).

    ``digits`` asks for more significant digits, e.g. for chart ticks that would read alike.
    """
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    unit = _unit(name)
    if unit is not None:
        return unit(value, digits)
    if value == 0:
        return "0"
    if _is_rate(name):
        return f"{value:.{digits - 1}e}"
    rounded = float(f"{value:.{digits}g}")
    magnitude = abs(rounded)
    if magnitude >= 1e15:
        return f"{value:.{digits - 1}e}"
    for size, suffix in SUFFIXES:
        if magnitude >= size:
            return f"{_significant(value / size, digits)} {suffix}"
    if float(value).is_integer():
        return str(int(value))
    if magnitude < 0.001:
        return f"{value:.{digits - 1}e}"
    return _significant(value, digits)


def format_bytes(value: float, digits: int = SIGNIFICANT_DIGITS) -> str:
    """A size in binary units, as memory is reported: ``1.50 GiB``, ``312 MiB``, ``512 B``."""
    for size, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(value) >= size:
            return f"{_significant(value / size, digits)} {suffix}"
    return f"{int(value)} B"


def _per_step(value: float, digits: int) -> str:
    return f"{_significant(value, digits) if value else '0'} s/step"


def _per_second(value: float, digits: int) -> str:
    return f"{format_metric(value, digits=digits)} tokens/s"


def _percent(value: float, digits: int) -> str:
    return f"{_significant(value, digits) if value else '0'}%"


# Training-cost figures (``training.engine.runner.cost_figures``), by the end of their name.
UNITS = {
    "memory_bytes": lambda value, digits: format_bytes(value, digits),
    "seconds_per_step": _per_step,
    "tokens_per_second": _per_second,
    "trainable_percent": _percent,
}


def _unit(name: str):
    last = name.rsplit("/", 1)[-1]
    return next((unit for ending, unit in UNITS.items() if last.endswith(ending)), None)


# The run page's "Training cost" lines: (final metric, label), in this order.
COST_FIGURES = (
    ("trainable_parameters", "Trainable parameters"),
    ("peak_memory_bytes", "Peak memory"),
    ("train_seconds_per_step", "Time per step"),
    ("train_tokens_per_second", "Throughput"),
)


def cost_lines(final_metrics: dict) -> list[tuple[str, str]]:
    """What a run's training cost, as (label, text) lines for people; [] before it has finished.

    Trainable parameters come with their share of the whole (``1.23 M of 135 M, 0.912%``).
    """
    lines = []
    for name, label in COST_FIGURES:
        value = final_metrics.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        text = format_metric(value, name)
        if name == "trainable_parameters" and final_metrics.get("total_parameters"):
            share = format_metric(final_metrics.get("trainable_percent"), "trainable_percent")
            text = f"{text} of {format_metric(final_metrics['total_parameters'])} ({share})"
        lines.append((label, text))
    return lines


def _is_rate(name: str) -> bool:
    last = name.rsplit("/", 1)[-1]
    return last in RATE_NAMES or last.endswith("_learning_rate")


def _significant(value: float, digits: int) -> str:
    """``value`` with ``digits`` significant digits, trailing zeros kept (0.77 -> "0.770")."""
    rounded = float(f"{value:.{digits}g}")
    if rounded == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:.{decimals}f}"


def format_learning_rate(value: float) -> str:
    """A learning rate as people write one in a setting: 2e-4, 1e-5, 2.5e-5, 0.05 (not 0.0002 or 1e-05).

    For the rate a run is set to (the launch form's hints, the run page); the rate measured along a
    schedule is a metric (``format_metric``: 1.00e-04, three significant digits like its neighbours).
    """
    if value >= 0.01:
        return f"{value:g}"
    mantissa, exponent = f"{value:.6e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def format_eta(seconds: float | None) -> str:
    """Time left for people: ``ETA 42 s``, ``ETA 12 min``, ``ETA 2.5 h``; empty when unknown.

    The live pages' script (``training/static/training/live.js``, ``formatSeconds``) follows the
    same rules for the updates it draws itself.
    """
    if seconds is None:
        return ""
    whole = max(0, round(seconds))
    if whole < 90:
        return f"ETA {whole} s"
    if whole < 5400:
        return f"ETA {round(whole / 60)} min"
    return f"ETA {whole / 3600:.1f} h"


# CSI sequences (colours, cursor moves, erase line: ESC [ ... final byte), OSC sequences (window
# titles, links: ESC ] ... BEL or ESC \), and the remaining two-byte escapes (ESC followed by one char).
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def terminal_text(text: str) -> str:
    """What a terminal shows for ``text``: escapes stripped, carriage-return overwrites collapsed.

    tqdm redraws its bar with ``\\r`` on one line: of each line only the part after its last
    carriage return is kept (a trailing ``\\r`` overwrites nothing).
    """
    if not text:
        return text
    text = _ANSI_ESCAPE.sub("", text.replace("\r\n", "\n"))
    lines = []
    for line in text.split("\n"):
        states = [state for state in line.split("\r") if state]
        lines.append(states[-1] if states else "")
    return "\n".join(lines)


def format_figure(value: float | None, unit: str) -> str:
    """An evaluation figure for people: shares as percentages (``93.3%``), perplexity with two
    decimals, token counts with one, other values (nats, rewards) with three significant digits."""
    if value is None or not math.isfinite(value):
        return "—"
    if unit == "share":
        return f"{value * 100:.1f}%"
    if unit == "perplexity":
        return f"{value:.2f}"
    if unit == "tokens":
        return f"{value:.1f}"
    return format_metric(value)


def format_change(value: float | None, unit: str) -> str:
    """A change of an evaluation figure, signed: ``+12.5 pts`` for shares, ``-0.31`` otherwise."""
    if value is None or not math.isfinite(value):
        return "—"
    if unit == "share":
        return f"{value * 100:+.1f} pts"
    sign = "+" if value >= 0 else "-"
    return sign + format_figure(abs(value), unit)


def message_text(value: object) -> str:
    """A prompt or answer as plain text: a string as it is; a conversation as its messages' contents
    (each after its role when there are several), one paragraph each. Escaped by the template."""
    if isinstance(value, list):
        messages = [message for message in value if isinstance(message, dict)]
        if len(messages) == 1:
            return str(messages[0].get("content", ""))
        return "\n\n".join(f"{message.get('role', '')}: {message.get('content', '')}" for message in messages)
    return "" if value is None else str(value)
