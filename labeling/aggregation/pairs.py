"""Expand reviewers' answers into pairwise comparisons, the unit every aggregation method works on.

One row of the result is one reviewer's verdict on one pair of responses of one task. Pairs are in
canonical order (``a < b`` by response id), so votes from different reviewers, shown orders and
question types line up on the same ``(task_id, a, b)`` key.

- ``pairwise`` answers give one row, with the reviewer's strength (1..S) and ``both_bad`` flag.
- ``ranking`` answers give all C(K, 2) pairs of the K ranked responses, as in InstructGPT
  (Ouyang et al. 2022, section 3.5); responses in the same group are tied, and the strength is the
  distance between the two groups, capped at ``max_strength``.
- ``likert`` answers compare the scores of one aspect (or the mean over aspects): a difference of
  at least ``likert_threshold`` scale points is a preference, a smaller one a tie (or dropped).

This module imports no Django: the ORM loads ``JudgementRecord`` rows and calls in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PAIR_COLUMNS = ("task_id", "reviewer_id", "judgement_id", "a", "b", "outcome", "strength", "left_first", "both_bad")
GOLD_COLUMNS = ("task_id", "a", "b", "outcome")
COMPARATIVE_TYPES = ("pairwise", "ranking", "likert")

# Row-level codes for the question type, so the expansion can branch with np.select, not per row.
_PAIRWISE, _RANKING, _LIKERT = 0, 1, 2
_KIND = {"pairwise": _PAIRWISE, "ranking": _RANKING, "likert": _LIKERT}


@dataclass(frozen=True, slots=True)
class JudgementRecord:
    """One reviewer's answer to one comparative question of one task, as plain data.

    ``answer`` is that question's answer in the format of ``labeling.schema``. ``response_ids`` are
    the task's responses in position (import) order, which is the order ``gold`` refers to;
    ``shown_order`` is the order this reviewer saw them, left/top first.
    """

    judgement_id: int
    task_id: int
    reviewer_id: int
    question_type: str
    answer: Any
    response_ids: tuple[int, ...]
    shown_order: tuple[int, ...]
    is_gold: bool = False
    gold: Mapping[str, Any] | None = None


def empty_pairs() -> pd.DataFrame:
    """A pairs frame with no rows and the documented columns and dtypes."""
    return pd.DataFrame(
        {
            "task_id": pd.Series(dtype="int64"),
            "reviewer_id": pd.Series(dtype="int64"),
            "judgement_id": pd.Series(dtype="int64"),
            "a": pd.Series(dtype="int64"),
            "b": pd.Series(dtype="int64"),
            "outcome": pd.Series(dtype="float64"),
            "strength": pd.Series(dtype="int64"),
            "left_first": pd.Series(dtype="boolean"),
            "both_bad": pd.Series(dtype="bool"),
        }
    )


def expand_pairs(
    records: Iterable[JudgementRecord],
    *,
    max_strength: int = 3,
    likert_aspect: str | None = None,
    likert_threshold: float = 1.0,
    likert_ties: bool = True,
) -> pd.DataFrame:
    """Turn judgements into one row per (judgement, pair of responses).

    Returns a frame with columns ``task_id, reviewer_id, judgement_id, a, b, outcome, strength,
    left_first, both_bad``:

    - ``a < b`` are response ids; ``outcome`` is 1.0 when ``a`` is preferred, 0.0 when ``b`` is,
      0.5 for a tie.
    - ``strength`` is an integer, 0 for ties: the pairwise answer's strength (1..S); for rankings the
      distance in groups; for likert ``floor(|score difference| / likert_threshold)``. Ranking and
      likert strengths are capped at ``max_strength``.
    - ``left_first`` is True when the preferred response was shown before the other one (left/top),
      NA for ties. Its per-reviewer mean measures position bias.
    - ``both_bad`` is the pairwise answer's flag (False for other types); the pair is kept either way
      so dataset builders decide what to do with it.

    ``likert_aspect`` picks one aspect; None averages the aspects each response was scored on.
    ``likert_threshold`` is in scale points. With ``likert_ties`` False, differences below the
    threshold are dropped rather than kept as ties. Answers that are None (an optional question
    left blank) are skipped; other question types raise ``ValueError``.
    """
    if max_strength < 1:
        raise ValueError("max_strength must be at least 1")
    if likert_threshold <= 0:
        raise ValueError("likert_threshold must be positive (scale points)")

    # Parsing the JSON answers is per record; everything after it is vectorized over a long frame of
    # (record, response, value, shown position) with a self-merge on the record.
    meta_rows: list[tuple[int, int, int, int, int, int, bool]] = []
    long_rec: list[int] = []
    long_response: list[int] = []
    long_value: list[float] = []
    long_position: list[float] = []
    for record in records:
        if record.answer is None:
            continue
        if record.question_type not in _KIND:
            raise ValueError(
                f"judgement {record.judgement_id}: {record.question_type!r} answers are not comparisons; "
                f"expected one of {', '.join(COMPARATIVE_TYPES)}"
            )
        values, strength, both_bad = _values(record, likert_aspect)
        if len(values) < 2:
            continue
        rec = len(meta_rows)
        meta_rows.append(
            (
                rec,
                record.task_id,
                record.reviewer_id,
                record.judgement_id,
                _KIND[record.question_type],
                strength,
                both_bad,
            )
        )
        shown = {response_id: index for index, response_id in enumerate(record.shown_order)}
        for response_id, value in values.items():
            long_rec.append(rec)
            long_response.append(response_id)
            long_value.append(value)
            long_position.append(shown.get(response_id, np.nan))
    if not long_rec:
        return empty_pairs()

    meta = pd.DataFrame(
        meta_rows, columns=["rec", "task_id", "reviewer_id", "judgement_id", "kind", "strength", "both_bad"]
    ).set_index("rec")
    long = pd.DataFrame(
        {
            "rec": np.asarray(long_rec, dtype=np.int64),
            "response": np.asarray(long_response, dtype=np.int64),
            "value": np.asarray(long_value, dtype=np.float64),
            "position": np.asarray(long_position, dtype=np.float64),
        }
    )
    merged = long.merge(long, on="rec", suffixes=("_a", "_b"))
    merged = merged[merged["response_a"] < merged["response_b"]].reset_index(drop=True)
    rec = merged["rec"].to_numpy()
    kind = meta["kind"].to_numpy()[rec]
    answer_strength = meta["strength"].to_numpy()[rec]

    diff = merged["value_a"].to_numpy() - merged["value_b"].to_numpy()
    # Likert differences below the threshold are not preferences; rankings and pairwise are exact.
    decisive = np.where(kind == _LIKERT, np.abs(diff) >= likert_threshold, diff != 0)
    outcome = np.where(decisive, np.where(diff > 0, 1.0, 0.0), 0.5)
    scale = np.where(kind == _LIKERT, likert_threshold, 1.0)
    capped_distance = np.minimum(np.floor(np.abs(diff) / scale), max_strength)
    strength = np.where(decisive, np.where(kind == _PAIRWISE, answer_strength, capped_distance), 0).astype(np.int64)

    position_a, position_b = merged["position_a"].to_numpy(), merged["position_b"].to_numpy()
    preferred_left = np.where(outcome == 1.0, position_a < position_b, position_b < position_a)
    left_known = decisive & ~np.isnan(position_a) & ~np.isnan(position_b)
    left_first = pd.array(np.where(left_known, preferred_left, False), dtype="boolean")
    left_first[~left_known] = pd.NA

    pairs = pd.DataFrame(
        {
            "task_id": meta["task_id"].to_numpy()[rec].astype(np.int64),
            "reviewer_id": meta["reviewer_id"].to_numpy()[rec].astype(np.int64),
            "judgement_id": meta["judgement_id"].to_numpy()[rec].astype(np.int64),
            "a": merged["response_a"].to_numpy(),
            "b": merged["response_b"].to_numpy(),
            "outcome": outcome,
            "strength": strength,
            "left_first": left_first,
            "both_bad": meta["both_bad"].to_numpy()[rec].astype(bool),
        }
    )
    if not likert_ties:
        pairs = pairs[(kind != _LIKERT) | decisive].reset_index(drop=True)
    return pairs.sort_values(["task_id", "a", "b", "judgement_id"], kind="stable").reset_index(drop=True)


def gold_pairs(records: Iterable[JudgementRecord]) -> pd.DataFrame:
    """The known outcomes of gold tasks as pairs: columns ``task_id, a, b, outcome``.

    ``gold`` refers to responses by position (``{"preferred": i}`` or ``{"ranking": [i, ...]}``, best
    first), mapped to ids through ``response_ids``. ``preferred`` beats every other response and says
    nothing about the others among themselves, so only those pairs are produced. One row per task
    and pair, however many records share the task.
    """
    rows: dict[tuple[int, int, int], float] = {}
    for record in records:
        if not record.is_gold or not record.gold:
            continue
        ids = record.response_ids
        if "preferred" in record.gold:
            best = ids[record.gold["preferred"]]
            ranked = {best: 0, **{other: 1 for other in ids if other != best}}
            comparable = [(best, other) for other in ids if other != best]
        elif "ranking" in record.gold:
            ranked = {ids[position]: rank for rank, position in enumerate(record.gold["ranking"])}
            comparable = [(x, y) for x in ranked for y in ranked if x != y]
        else:
            raise ValueError(f"task {record.task_id}: gold must have 'preferred' or 'ranking'")
        for x, y in comparable:
            a, b = min(x, y), max(x, y)
            rows[(record.task_id, a, b)] = 1.0 if ranked[a] < ranked[b] else 0.0
    if not rows:
        return pd.DataFrame(
            {
                "task_id": pd.Series(dtype="int64"),
                "a": pd.Series(dtype="int64"),
                "b": pd.Series(dtype="int64"),
                "outcome": pd.Series(dtype="float64"),
            }
        )
    keys = np.asarray(list(rows), dtype=np.int64)
    frame = pd.DataFrame({"task_id": keys[:, 0], "a": keys[:, 1], "b": keys[:, 2], "outcome": list(rows.values())})
    return frame.sort_values(["task_id", "a", "b"]).reset_index(drop=True)


def _values(record: JudgementRecord, likert_aspect: str | None) -> tuple[dict[int, float], int, bool]:
    """Per response a number where higher is better, plus the pairwise strength and both_bad flag."""
    answer = record.answer
    if record.question_type == "pairwise":
        shown = record.shown_order if len(record.shown_order) == 2 else record.response_ids
        a_id, b_id = (int(x) for x in shown)
        winner = answer.get("winner")
        both_bad = bool(answer.get("both_bad", False))
        if winner is None:
            return {a_id: 0.0, b_id: 0.0}, 0, both_bad
        winner = int(winner)
        if winner not in (a_id, b_id):
            raise ValueError(f"judgement {record.judgement_id}: winner {winner} is not one of {a_id}, {b_id}")
        strength = int(answer.get("strength") or 1)
        return {a_id: float(winner == a_id), b_id: float(winner == b_id)}, strength, both_bad
    if record.question_type == "ranking":
        # Higher is better, so the best group (index 0) gets the highest value.
        return {int(rid): -float(group) for group, ids in enumerate(answer["order"]) for rid in ids}, 0, False
    values: dict[int, float] = {}
    for key, scores in answer.items():
        if not scores:
            continue
        if likert_aspect is None:
            values[int(key)] = float(np.mean(list(scores.values())))
        elif likert_aspect in scores:
            values[int(key)] = float(scores[likert_aspect])
    return values, 0, False
