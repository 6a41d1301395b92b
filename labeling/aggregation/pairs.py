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

from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PAIR_COLUMNS = ("task_id", "reviewer_id", "judgement_id", "a", "b", "outcome", "strength", "left_first", "both_bad")
COMPARATIVE_TYPES = ("pairwise", "ranking", "likert")

_RECORD_FIELDS = ("first", "task_id", "reviewer_id", "judgement_id", "kind", "strength", "both_bad", "is_gold")
_PUBLIC_RECORD_FIELDS = ("task_id", "reviewer_id", "judgement_id", "is_gold")
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


class JudgementTable:
    """Comparative answers in flat columns: what ``expand_pairs`` works on, in about 60 bytes per answer.

    A dataset build over a million judgements cannot keep a million ``JudgementRecord`` objects with
    their answer dicts (about 1.7 KB each). ``append`` parses one record's answer into per-response
    values at once (so the loader can stream records from the database into it) and keeps only
    numbers: per record its task, reviewer, judgement, question kind, strength, ``both_bad`` and
    gold flag; per (record, response) the response id, its value (higher is better) and the position
    it was shown at. ``expand`` then makes the pairs without any per-record Python.

    ``likert_aspect`` picks the Likert aspect to compare (None: the mean over the aspects each
    response was scored on); it is applied while parsing.
    """

    def __init__(self, *, likert_aspect: str | None = None) -> None:
        self.likert_aspect = likert_aspect
        # Per record, _RECORD_FIELDS one after the other; "first" is the index of the record's first
        # (response, value, position) entry.
        self._records = array("q")
        self._response, self._value, self._position = array("q"), array("d"), array("d")

    @classmethod
    def from_records(cls, records: Iterable[JudgementRecord], *, likert_aspect: str | None = None) -> JudgementTable:
        table = cls(likert_aspect=likert_aspect)
        for record in records:
            table.append(record)
        return table

    def __len__(self) -> int:
        return len(self._records) // len(_RECORD_FIELDS)

    def append(self, record: JudgementRecord) -> None:
        """Add one record; see ``add``."""
        self.add(
            judgement_id=record.judgement_id,
            task_id=record.task_id,
            reviewer_id=record.reviewer_id,
            question_type=record.question_type,
            answer=record.answer,
            response_ids=record.response_ids,
            shown_order=record.shown_order,
            is_gold=record.is_gold,
        )

    def add(
        self,
        *,
        judgement_id: int,
        task_id: int,
        reviewer_id: int,
        question_type: str,
        answer: Any,
        response_ids: tuple[int, ...],
        shown_order: Sequence[int],
        is_gold: bool = False,
    ) -> None:
        """Add one answer, given as a ``JudgementRecord``'s fields (without building one).

        Blank answers (an optional question left empty) and answers that compare fewer than two
        responses add nothing; answers of other question types raise ``ValueError``.
        """
        if answer is None:
            return
        kind = _KIND.get(question_type)
        if kind is None:
            raise ValueError(
                f"judgement {judgement_id}: {question_type!r} answers are not comparisons; "
                f"expected one of {', '.join(COMPARATIVE_TYPES)}"
            )
        values, strength, both_bad = _values(
            kind, answer, response_ids, shown_order, judgement_id=judgement_id, likert_aspect=self.likert_aspect
        )
        if len(values) < 2:
            return
        record = (len(self._response), task_id, reviewer_id, judgement_id, kind, strength, both_bad, is_gold)
        self._records.extend(record)
        self._response.extend(values)
        self._value.extend(values.values())
        self._position.extend([shown_order.index(r) if r in shown_order else np.nan for r in values])

    def extend_pairwise(
        self,
        *,
        judgement_id: np.ndarray,
        task_id: np.ndarray,
        reviewer_id: np.ndarray,
        shown: np.ndarray,
        winner: np.ndarray,
        strength: np.ndarray,
        both_bad: np.ndarray,
        is_gold: np.ndarray,
    ) -> None:
        """Add many pairwise answers at once, as columns: what ``add`` does for each, without Python per answer.

        ``shown`` is an (n, 2) array of the two response ids in the order shown. ``winner`` is one of
        them, or negative for a tie; ``strength`` below 1 counts as 1, as in ``add``. A winner that
        is neither shown response raises ``ValueError`` naming the judgement.
        """
        shown = np.asarray(shown, dtype=np.int64).reshape(-1, 2)
        winner = np.asarray(winner, dtype=np.int64)
        tie = winner < 0
        stray = ~tie & (winner != shown[:, 0]) & (winner != shown[:, 1])
        if stray.any():
            at = int(np.flatnonzero(stray)[0])
            raise ValueError(
                f"judgement {int(judgement_id[at])}: winner {int(winner[at])} is not one of "
                f"{int(shown[at, 0])}, {int(shown[at, 1])}"
            )
        distinct = shown[:, 0] != shown[:, 1]  # one response shown twice compares nothing
        n = int(distinct.sum())
        shown, winner, tie = shown[distinct], winner[distinct], tie[distinct]
        records = np.empty((n, len(_RECORD_FIELDS)), dtype=np.int64)
        records[:, 0] = len(self._response) + 2 * np.arange(n)
        records[:, 1] = np.asarray(task_id)[distinct]
        records[:, 2] = np.asarray(reviewer_id)[distinct]
        records[:, 3] = np.asarray(judgement_id)[distinct]
        records[:, 4] = _PAIRWISE
        records[:, 5] = np.where(tie, 0, np.maximum(np.asarray(strength, dtype=np.int64)[distinct], 1))
        records[:, 6] = np.asarray(both_bad, dtype=bool)[distinct]
        records[:, 7] = np.asarray(is_gold, dtype=bool)[distinct]
        self._records.frombytes(records.tobytes())
        self._response.frombytes(shown.tobytes())
        self._value.frombytes((winner[:, None] == shown).astype(np.float64).tobytes())
        self._position.frombytes(np.tile(np.array([0.0, 1.0]), n).tobytes())

    def column(self, name: str) -> np.ndarray:
        """A per-record column as an array: ``task_id``, ``reviewer_id``, ``judgement_id`` or ``is_gold``."""
        if name not in _PUBLIC_RECORD_FIELDS:
            raise KeyError(f"no per-record column {name!r}; choose from {', '.join(_PUBLIC_RECORD_FIELDS)}")
        return self._field(name).astype(bool if name == "is_gold" else np.int64)

    def _field(self, name: str) -> np.ndarray:
        by_record = np.frombuffer(self._records, dtype=np.int64).reshape(-1, len(_RECORD_FIELDS))
        return by_record[:, _RECORD_FIELDS.index(name)].copy()

    def expand(
        self,
        *,
        keep: np.ndarray | None = None,
        max_strength: int = 3,
        likert_threshold: float = 1.0,
        likert_ties: bool = True,
    ) -> pd.DataFrame:
        """The pairs frame of ``expand_pairs`` for the records where ``keep`` (a boolean per record) is True."""
        if max_strength < 1:
            raise ValueError("max_strength must be at least 1")
        if likert_threshold <= 0:
            raise ValueError("likert_threshold must be positive (scale points)")
        n_records = len(self)
        first = self._field("first")
        size = np.diff(np.r_[first, len(self._response)])
        chosen = np.arange(n_records) if keep is None else np.flatnonzero(np.asarray(keep, dtype=bool))
        if len(chosen) == 0:
            return empty_pairs()

        # Every pair (i < j) of a record's entries: records with k responses give C(k, 2) pairs, built
        # for all such records at once from the upper triangle of a k x k grid.
        side_i, side_j, rec = [], [], []
        for k in np.unique(size[chosen]):
            group = chosen[size[chosen] == k]
            upper_i, upper_j = np.triu_indices(int(k), 1)
            base = first[group][:, None]
            side_i.append((base + upper_i).ravel())
            side_j.append((base + upper_j).ravel())
            rec.append(np.repeat(group, len(upper_i)))
        entry_i, entry_j, rec = np.concatenate(side_i), np.concatenate(side_j), np.concatenate(rec)

        response = np.array(self._response, dtype=np.int64)
        # Canonical order: a < b by response id (a record never names one response twice).
        swap = response[entry_i] > response[entry_j]
        entry_a, entry_b = np.where(swap, entry_j, entry_i), np.where(swap, entry_i, entry_j)
        del entry_i, entry_j, swap
        distinct = response[entry_a] != response[entry_b]
        entry_a, entry_b, rec = entry_a[distinct], entry_b[distinct], rec[distinct]
        del distinct

        # Sort the row indexes first, so every column below is made once, already in order.
        task, judgement = self.column("task_id")[rec], self.column("judgement_id")[rec]
        a, b = response[entry_a], response[entry_b]
        order = np.lexsort((judgement, b, a, task))
        task, judgement, a, b = task[order], judgement[order], a[order], b[order]
        entry_a, entry_b, rec = entry_a[order], entry_b[order], rec[order]
        del order, response

        kind = self._field("kind").astype(np.int8)[rec]
        value = np.array(self._value, dtype=np.float64)
        diff = value[entry_a] - value[entry_b]
        del value
        # Likert differences below the threshold are not preferences; rankings and pairwise are exact.
        decisive = np.where(kind == _LIKERT, np.abs(diff) >= likert_threshold, diff != 0)
        outcome = np.where(decisive, np.where(diff > 0, 1.0, 0.0), 0.5)
        strength = self._field("strength")[rec]  # the pairwise answer's strength
        ranked = kind != _PAIRWISE
        if ranked.any():
            scale = np.where(kind[ranked] == _LIKERT, likert_threshold, 1.0)
            strength[ranked] = np.minimum(np.floor(np.abs(diff[ranked]) / scale), max_strength)
        strength[~decisive] = 0
        del diff

        position = np.array(self._position, dtype=np.float64)
        position_a, position_b = position[entry_a], position[entry_b]
        del position, entry_a, entry_b
        left_known = decisive & ~np.isnan(position_a) & ~np.isnan(position_b)
        left_first = pd.array(
            np.where(outcome == 1.0, position_a < position_b, position_b < position_a) & left_known, dtype="boolean"
        )
        left_first[~left_known] = pd.NA
        del position_a, position_b, left_known

        pairs = pd.DataFrame(
            {
                "task_id": task,
                "reviewer_id": self.column("reviewer_id")[rec],
                "judgement_id": judgement,
                "a": a,
                "b": b,
                "outcome": outcome,
                "strength": strength,
                "left_first": left_first,
                "both_bad": self._field("both_bad").astype(bool)[rec],
            },
            copy=False,
        )
        if not likert_ties:
            pairs = pairs[(kind != _LIKERT) | decisive].reset_index(drop=True)
        return pairs


def expand_pairs(
    records: Iterable[JudgementRecord],
    *,
    max_strength: int = 3,
    likert_aspect: str | None = None,
    likert_threshold: float = 1.0,
    likert_ties: bool = True,
) -> pd.DataFrame:
    """Turn judgements into one row per (judgement, pair of responses), sorted by task, a, b, judgement.

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
    left blank) are skipped; other question types raise ``ValueError``. Large builds stream their
    records into a ``JudgementTable`` instead and call its ``expand``.
    """
    return JudgementTable.from_records(records, likert_aspect=likert_aspect).expand(
        max_strength=max_strength, likert_threshold=likert_threshold, likert_ties=likert_ties
    )


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


def _values(
    kind: int,
    answer: Any,
    response_ids: tuple[int, ...],
    shown_order: Sequence[int],
    *,
    judgement_id: int,
    likert_aspect: str | None,
) -> tuple[dict[int, float], int, bool]:
    """Per response a number where higher is better, plus the pairwise strength and both_bad flag."""
    if kind == _PAIRWISE:
        shown = shown_order if len(shown_order) == 2 else response_ids
        a_id, b_id = (int(x) for x in shown)
        winner = answer.get("winner")
        both_bad = bool(answer.get("both_bad", False))
        if winner is None:
            return {a_id: 0.0, b_id: 0.0}, 0, both_bad
        winner = int(winner)
        if winner not in (a_id, b_id):
            raise ValueError(f"judgement {judgement_id}: winner {winner} is not one of {a_id}, {b_id}")
        strength = int(answer.get("strength") or 1)
        return {a_id: float(winner == a_id), b_id: float(winner == b_id)}, strength, both_bad
    if kind == _RANKING:
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
