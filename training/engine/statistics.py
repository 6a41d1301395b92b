"""Figures with 95% intervals, and the verdict they add up to. Pure functions on arrays: no models.

A figure compares a model after training (``new``) with the model it was trained from (``base``)
on the same held-out items. A mean's ``change_interval`` is Student's t interval of the paired
differences new - base; a ratio's (perplexity) is a paired bootstrap interval (items resampled
together); a benchmark's is the change +- two standard errors of the difference. The change is
``better`` or ``worse`` only when that interval leaves out zero and at least ``MIN_ITEMS`` items
were measured; otherwise there is ``no clear change``. Figures without a direction (KL, lengths)
get no verdict. Intervals of a share (0/1 per item) are Wilson's.

Figure, as a dict (JSON)::

    {"name": "preference_accuracy", "label": "...", "unit": "share", "better": "higher",
     "new": 0.93, "new_interval": [0.84, 0.97], "base": 0.55, "base_interval": [0.42, 0.67],
     "change": 0.38, "change_interval": [0.25, 0.5], "n": 60, "verdict": "better", "note": ""}

``unit`` is one of share, nats, tokens, perplexity, reward; ``better`` is higher, lower or None.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.stats

Z_95 = 1.959963984540054
BOOTSTRAP_SAMPLES = 2000
# Below this many held-out items no change is called, however wide apart the figures: a handful of
# items can all fall one way by chance, and a bootstrap interval of a handful is too narrow.
MIN_ITEMS = 10
BETTER, WORSE, NO_CLEAR_CHANGE = "better", "worse", "no clear change"


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion; (0, 1) when there are no trials."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + Z_95**2 / (2 * n)) / (1 + Z_95**2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + Z_95**2 / (4 * n**2)) / (1 + Z_95**2 / n)
    # Exactly 0 (or 1) when every trial failed (or succeeded): rounding leaves a few 1e-17 otherwise.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def bootstrap_interval(
    statistic: Callable[..., float], *columns: Sequence[float], seed: int = 0
) -> tuple[float, float] | None:
    """95% percentile bootstrap interval of ``statistic(*columns)``, resampling rows of the columns
    together; None with fewer than two rows (no interval to speak of)."""
    arrays = [np.asarray(column, dtype=float) for column in columns]
    n = len(arrays[0])
    if n < 2:
        return None
    rows = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP_SAMPLES, n))
    values = np.array([statistic(*(array[sample] for array in arrays)) for sample in rows])
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """95% interval of a mean: Wilson's for 0/1 values, else Student's t (None for a single value)."""
    array = np.asarray(values, dtype=float)
    n = len(array)
    if n == 0:
        return None
    if np.all((array == 0) | (array == 1)):
        return wilson_interval(float(array.sum()), n)
    if n == 1:
        return None
    half = float(scipy.stats.t.ppf(0.975, n - 1) * array.std(ddof=1) / math.sqrt(n))
    centre = float(array.mean())
    return centre - half, centre + half


def difference_interval(new: Sequence[float], base: Sequence[float]) -> tuple[float, float] | None:
    """95% Student's t interval of the mean paired difference new - base (None under two pairs)."""
    differences = np.asarray(new, dtype=float) - np.asarray(base, dtype=float)
    n = len(differences)
    if n < 2:
        return None
    half = float(scipy.stats.t.ppf(0.975, n - 1) * differences.std(ddof=1) / math.sqrt(n))
    return float(differences.mean()) - half, float(differences.mean()) + half


def paired_figure(
    name: str,
    label: str,
    *,
    unit: str,
    better: str | None,
    new: Sequence[float],
    base: Sequence[float] | None,
    statistic: Callable[..., float] | None = None,
    weights: tuple[Sequence[float], Sequence[float] | None] | None = None,
    note: str = "",
) -> dict[str, Any]:
    """A figure from per-item values of the new model and, on the same items, of the base.

    With ``weights`` (per-item denominators, e.g. token counts), the figure is a ratio of sums,
    ``statistic(values, weights)``, and its intervals come from the bootstrap; otherwise it is a mean.
    """
    figure = {
        "name": name,
        "label": label,
        "unit": unit,
        "better": better,
        "new": None,
        "new_interval": None,
        "base": None,
        "base_interval": None,
        "change": None,
        "change_interval": None,
        "n": len(new),
        "verdict": None,
        "note": note,
    }
    if weights is None:
        figure.update(new=float(np.mean(new)), new_interval=_listed(mean_interval(new)))
        if base is not None:
            figure.update(base=float(np.mean(base)), base_interval=_listed(mean_interval(base)))
            figure["change_interval"] = _listed(difference_interval(new, base))
    else:
        new_weights, base_weights = weights
        figure.update(new=float(statistic(np.asarray(new), np.asarray(new_weights))))
        figure["new_interval"] = _listed(bootstrap_interval(statistic, new, new_weights))
        if base is not None:

            def difference(new_values, new_counts, base_values, base_counts) -> float:
                return float(statistic(new_values, new_counts) - statistic(base_values, base_counts))

            figure.update(base=float(statistic(np.asarray(base), np.asarray(base_weights))))
            figure["base_interval"] = _listed(bootstrap_interval(statistic, base, base_weights))
            figure["change_interval"] = _listed(bootstrap_interval(difference, new, new_weights, base, base_weights))
    if base is not None:
        figure["change"] = figure["new"] - figure["base"]
        figure["verdict"] = change_verdict(figure["change_interval"], better, items=figure["n"])
    return figure


def rate_figure(
    name: str, label: str, *, outcomes: Sequence[float], against: float, better: str = "higher", note: str = ""
) -> dict[str, Any]:
    """A rate against a fixed point: a win rate against 0.5 (outcomes 1, 0.5 for a tie, 0), or an
    accuracy against chance. Wilson's interval when every outcome is 0 or 1, else Student's t."""
    values = np.asarray(outcomes, dtype=float)
    n = len(values)
    rate = float(values.mean()) if n else None
    interval = mean_interval(values)
    change_interval = [interval[0] - against, interval[1] - against] if interval else None
    return {
        "name": name,
        "label": label,
        "unit": "share",
        "better": better,
        "new": rate,
        "new_interval": _listed(interval),
        "base": against,
        "base_interval": None,
        "change": rate - against if rate is not None else None,
        "change_interval": change_interval,
        "n": n,
        "verdict": change_verdict(change_interval, better, items=n) if n else None,
        "note": note,
    }


def benchmark_figure(name: str, label: str, *, new: dict[str, float], base: dict[str, float] | None) -> dict[str, Any]:
    """A benchmark's accuracy (``{"accuracy", "stderr", "items"}`` per model, as the harness reports
    it); the change counts when it is more than two standard errors of the difference. Without a
    standard error (the harness gives none for one item) there is no interval and no verdict."""
    figure = {
        "name": name,
        "label": label,
        "unit": "share",
        "better": "higher",
        "new": new["accuracy"],
        "new_interval": _two_errors(new["accuracy"], new["stderr"]) if new["stderr"] is not None else None,
        "base": None,
        "base_interval": None,
        "change": None,
        "change_interval": None,
        "n": new["items"],
        "verdict": None,
        "note": "",
    }
    if base is not None:
        figure.update(base=base["accuracy"], change=new["accuracy"] - base["accuracy"])
        if new["stderr"] is not None and base["stderr"] is not None:
            figure["base_interval"] = _two_errors(base["accuracy"], base["stderr"])
            figure["change_interval"] = _two_errors(figure["change"], math.hypot(new["stderr"], base["stderr"]))
            figure["verdict"] = change_verdict(figure["change_interval"], "higher", items=new["items"])
    return figure


def change_verdict(change_interval: Sequence[float] | None, better: str | None, *, items: int) -> str | None:
    """better / worse when the interval of the change leaves out zero (over enough items), else no clear change."""
    if better is None:
        return None
    if change_interval is None or items < MIN_ITEMS:
        return NO_CLEAR_CHANGE
    low, high = change_interval
    if not (math.isfinite(low) and math.isfinite(high)):
        return NO_CLEAR_CHANGE
    sign = 1 if better == "higher" else -1
    if sign * low > 0 and sign * high > 0:
        return BETTER
    if sign * low < 0 and sign * high < 0:
        return WORSE
    return NO_CLEAR_CHANGE


# What the verdict rests on, in order: the first of these figures that was measured. Agreement
# with held-out human preferences is the platform's ground truth; a win rate counts only under a
# reward model that is itself better than chance on those preferences.
HEADLINE_FIGURES = ("preference_accuracy", "win_rate", "perplexity", "pairwise_accuracy")


def summarize(figures: list[dict[str, Any]], *, reward_model_trusted: bool | None) -> dict[str, Any]:
    """The verdict of an evaluation: the headline figure's, and the warnings the others raise.

    ``{"verdict": better | worse | no clear change | not measured, "headline": name | None,
    "reason": sentence, "warnings": [sentences]}``.
    """
    by_name = {figure["name"]: figure for figure in figures}
    warnings = []
    usable = [name for name in HEADLINE_FIGURES if name in by_name and by_name[name]["verdict"] is not None]
    if "win_rate" in usable and reward_model_trusted is not True:
        usable.remove("win_rate")  # a judge that was not shown to beat chance decides nothing
        warnings.append(
            "The reward model is no better than chance on the held-out human preferences, so its win rate and "
            "mean reward say nothing about quality."
            if reward_model_trusted is False
            else "The reward model was not checked against held-out human preferences (the snapshot has no "
            "pairs), so its win rate and mean reward do not decide the verdict; a policy trained against it "
            "may please it without being better."
        )
    forgotten = [
        figure["label"]
        for figure in figures
        if figure["verdict"] == WORSE and (figure["name"] == "perplexity" or figure["name"].startswith("benchmark:"))
    ]
    if forgotten:
        warnings.append(f"Forgetting: {', '.join(forgotten)} got worse beyond its noise.")
    length = by_name.get("answer_tokens")
    win = by_name.get("win_rate")
    if length and win and win["verdict"] == BETTER and length["change_interval"] and length["change_interval"][0] > 0:
        warnings.append(
            f"Answers grew longer ({length['base']:.0f} → {length['new']:.0f} tokens on average) as the win rate "
            "rose: reward hacking often shows as length. Read some answers before trusting the win rate."
        )
    if not usable:
        return {
            "verdict": "not measured",
            "headline": None,
            "reason": "No held-out figure with a direction was measured.",
            "warnings": warnings,
        }
    headline = by_name[usable[0]]
    return {
        "verdict": headline["verdict"],
        "headline": headline["name"],
        "reason": _reason(headline),
        "warnings": warnings,
    }


def _reason(figure: dict[str, Any]) -> str:
    count = f"{figure['n']} item{'s' if figure['n'] != 1 else ''}"
    if figure["name"] in ("win_rate", "pairwise_accuracy"):
        against = "its base" if figure["name"] == "win_rate" else "chance"
        interval = figure["new_interval"]
        spread = (
            f"95% interval {_shown(interval[0], figure['unit'])} to {_shown(interval[1], figure['unit'])}, "
            if interval
            else ""
        )
        return f"{figure['label']}: {_shown(figure['new'], figure['unit'])} against {against} ({spread}{count})."
    change = figure["change_interval"]
    spread = (
        f"95% interval of the change {_signed(change[0], figure['unit'])} to {_signed(change[1], figure['unit'])}, "
        if change
        else "too few items for an interval, "
    )
    return (
        f"{figure['label']}: {_shown(figure['base'], figure['unit'])} → {_shown(figure['new'], figure['unit'])} "
        f"({spread}{count})."
    )


def _shown(value: float, unit: str) -> str:
    return f"{value:.0%}" if unit == "share" else f"{value:.3g}"


def _signed(value: float, unit: str) -> str:
    return f"{value * 100:+.1f} points" if unit == "share" else f"{value:+.3g}"


def _listed(interval: tuple[float, float] | None) -> list[float] | None:
    return list(interval) if interval is not None else None


def _two_errors(value: float, stderr: float) -> list[float]:
    return [value - 2 * stderr, value + 2 * stderr]
