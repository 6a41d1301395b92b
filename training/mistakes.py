"""A model's mistakes, sliced: pure functions over an evaluation's per-item outcomes. No ORM.

The evaluate stage writes one outcome per held-out item (``training.engine.stages.evaluate``,
``outcomes.jsonl``). The selector loads them and each task's campaign and ``meta`` from the database,
and these functions do the rest:

- ``outcome_table`` joins outcomes to their tasks, one row per item, with ``score`` the item's
  result: for a reward model's pair 1 (right), 0.5 (a tie) or 0 (wrong); for a policy's prompt 1 (it
  beat its base under the reward model), 0.5 (a tie) or 0 (it lost).
- ``error_slices`` measures the score (accuracy, or win rate) with its count and 95% Wilson interval
  over the whole set and per slice: by campaign, by each ``meta`` key's values, by prompt length in
  characters (of the prompt's text; of every message's content for a conversation), and by the
  agreement of the human votes (pairs only).
- ``slice_rows`` picks a slice's items back out, and ``misses`` the ones the model got wrong.

**Much worse than the whole**: a slice is flagged when it holds at least ``MIN_FLAGGED_COUNT``
items and the whole of its 95% interval lies below the overall score. The rule wants evidence, not
a low point estimate: a slice of three wrong pairs is shown, but not flagged.

Slices are sorted worst first: flagged ones, then by score, then the larger first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from training.engine.statistics import wilson_interval
from training.formatting import format_figure

MIN_FLAGGED_COUNT = 10
# A meta key with more distinct values than this names items rather than groups them (an id, a
# timestamp): its slices would each hold one item, so it is left out and said so.
MAX_VALUES_PER_META_KEY = 30
# Prompt length buckets, in characters: [low, high), the slice's value, and a label for people.
PROMPT_LENGTH_BUCKETS = (
    (0, 200, "0-199", "under 200 characters"),
    (200, 500, "200-499", "200 to 499 characters"),
    (500, 2000, "500-1999", "500 to 1,999 characters"),
    (2000, None, "2000+", "2,000 characters or more"),
)
DIMENSIONS = {
    "campaign": "Campaign",
    "meta": "Meta",
    "prompt_length": "Prompt length",
    "agreement": "Human agreement",
}
NOT_SET = "(not set)"
UNKNOWN_CAMPAIGN = "(task no longer exists)"
SCORES = {"new": 1.0, "tie": 0.5, "base": 0.0}  # a policy's prompt, by who won under the reward model


@dataclass(frozen=True)
class Slice:
    """The items of one value of one dimension (``key`` names the meta key; empty otherwise)."""

    dimension: str
    key: str
    value: str
    label: str
    count: int
    score: float
    interval: tuple[float, float]
    much_worse: bool

    @property
    def dimension_label(self) -> str:
        return f"Meta · {self.key}" if self.dimension == "meta" else DIMENSIONS[self.dimension]

    @property
    def misses(self) -> float:
        """Items the model got wrong, a tie counting half."""
        return self.count * (1 - self.score)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "key": self.key,
            "value": self.value,
            "label": self.label,
            "count": self.count,
            "score": self.score,
            "interval": list(self.interval),
            "much_worse": self.much_worse,
        }


@dataclass(frozen=True)
class SliceReport:
    """The score over all items, every slice worst first, and the meta keys left out (key -> values)."""

    count: int
    score: float
    interval: tuple[float, float]
    slices: list[Slice]
    meta_keys_left_out: dict[str, int]


def outcome_table(outcomes: Iterable[Mapping[str, Any]], tasks: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per outcome, joined to its task.

    ``outcomes``: the evaluate stage's lines, all of one kind (``pair`` or ``prompt``). ``tasks``: task
    id (as the held-out file wrote it, a string) -> ``{"campaign_id", "campaign", "meta"}``; an
    outcome whose task is not there gets no campaign and no meta. Columns: the outcome's own, plus
    ``score``, ``campaign_id``, ``campaign``, ``meta`` (a dict) and ``prompt_chars``.
    """
    rows = []
    for outcome in outcomes:
        task = tasks.get(str(outcome.get("task_id") or ""))
        score = outcome["correct"] if outcome["kind"] == "pair" else SCORES[outcome["winner"]]
        rows.append(
            {
                **outcome,
                "score": float(score),
                "campaign_id": "" if task is None else str(task["campaign_id"]),
                "campaign": UNKNOWN_CAMPAIGN if task is None else task["campaign"],
                "meta": {} if task is None else dict(task["meta"] or {}),
                "prompt_chars": prompt_chars(outcome.get("prompt")),
            }
        )
    return pd.DataFrame(rows, columns=None if rows else ["score", "campaign_id", "campaign", "meta", "prompt_chars"])


def prompt_chars(prompt: Any) -> int:
    """Characters of a prompt's text; a conversation's is the sum of its messages' contents."""
    if isinstance(prompt, list):
        return sum(len(str(message.get("content", ""))) for message in prompt if isinstance(message, dict))
    return len(prompt) if isinstance(prompt, str) else 0


def error_slices(table: pd.DataFrame, *, min_count: int = MIN_FLAGGED_COUNT) -> SliceReport:
    """The score over the whole table and per slice (see the module's docstring for the flag rule)."""
    count = len(table)
    score = float(table["score"].mean()) if count else 0.0
    interval = wilson_interval(float(table["score"].sum()), count) if count else (0.0, 1.0)
    groups, left_out = _slice_columns(table)
    slices = []
    for dimension, key, values, labels in groups:
        for value, members in table.groupby(values, sort=True):
            n = len(members)
            slice_score = float(members["score"].mean())
            low, high = wilson_interval(float(members["score"].sum()), n)
            slices.append(
                Slice(
                    dimension=dimension,
                    key=key,
                    value=str(value),
                    label=labels.get(value, str(value)),
                    count=n,
                    score=slice_score,
                    interval=(low, high),
                    much_worse=n >= min_count and high < score,
                )
            )
    slices.sort(key=lambda item: (not item.much_worse, item.score, -item.count, item.dimension, item.key, item.value))
    return SliceReport(count=count, score=score, interval=interval, slices=slices, meta_keys_left_out=left_out)


def find_slice(report: SliceReport, *, dimension: str, key: str = "", value: str) -> Slice | None:
    """The report's slice of that dimension, key and value, or None."""
    for item in report.slices:
        if (item.dimension, item.key, item.value) == (dimension, key, value):
            return item
    return None


def slice_rows(table: pd.DataFrame, *, dimension: str, key: str = "", value: str) -> pd.DataFrame:
    """The table's rows in one slice (empty when no row is in it, or the dimension is unknown)."""
    groups, _ = _slice_columns(table)
    for group_dimension, group_key, values, _labels in groups:
        if (group_dimension, group_key) == (dimension, key):
            return table[values == value]
    return table.iloc[0:0]


def misses(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows the model got wrong or tied, the most confidently wrong first.

    For pairs, the lowest reward margin first; for prompts, the largest reward the base won by.
    """
    wrong = rows[rows["score"] < 1]
    if wrong.empty:
        return []
    if "margin" in wrong:
        wrong = wrong.sort_values(["margin", "item"], kind="stable")
    else:
        gap = wrong["base_reward"] - wrong["new_reward"]
        wrong = wrong.assign(reward_gap=gap).sort_values(["reward_gap", "item"], ascending=[False, True])
    return wrong.to_dict("records")


def _slice_columns(table: pd.DataFrame) -> tuple[list[tuple[str, str, pd.Series, dict[str, str]]], dict[str, int]]:
    """Each dimension's slice value per row (a string), with the labels of its values, and the meta
    keys left out for having too many values."""
    if table.empty:
        return [], {}
    groups: list[tuple[str, str, pd.Series, dict[str, str]]] = []
    campaigns = table["campaign_id"].astype(str)
    groups.append(("campaign", "", campaigns, dict(zip(campaigns, table["campaign"], strict=True))))
    left_out = {}
    keys = sorted({key for meta in table["meta"] for key in meta})
    for key in keys:
        values = table["meta"].map(lambda meta, key=key: meta_value(meta.get(key, None), present=key in meta))
        distinct = values.nunique()
        if distinct > MAX_VALUES_PER_META_KEY:
            left_out[key] = int(distinct)
            continue
        groups.append(("meta", key, values, {}))
    lengths = table["prompt_chars"].map(_length_bucket)
    groups.append(("prompt_length", "", lengths, {value: label for *_, value, label in PROMPT_LENGTH_BUCKETS}))
    if "agreement" in table and table["agreement"].notna().any():
        levels = table["agreement"].map(lambda level: NOT_SET if pd.isna(level) else f"{float(level):.2f}")
        labels = {
            level: level if level == NOT_SET else format_figure(float(level), "share") for level in levels.unique()
        }
        groups.append(("agreement", "", levels, labels))
    return groups, left_out


def meta_value(value: Any, *, present: bool = True) -> str:
    """A meta value as one string: text as it is, anything else as JSON; a key a task lacks is ``(not set)``."""
    if not present:
        return NOT_SET
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _length_bucket(chars: int) -> str:
    for low, high, value, _label in PROMPT_LENGTH_BUCKETS:
        if chars >= low and (high is None or chars < high):
            return value
    raise AssertionError(f"no bucket for {chars} characters")  # the buckets cover every length
