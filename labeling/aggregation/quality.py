"""How far reviewers agree, and how good each reviewer is: pure functions over pandas/numpy, no Django.

Agreement (per campaign and per question: the caller filters the records or pairs first):

- ``pairwise_agreement`` over the votes of ``pairs.expand_pairs``, with pairs of responses as units
  and reviewers as coders: percent agreement, Krippendorff's alpha (Krippendorff 2011, "Computing
  Krippendorff's Alpha-Reliability") nominal over the outcome {a, tie, b} and ordinal over the
  signed strength (-S..S).
- ``likert_agreement``: ordinal alpha over (task, response, aspect) units.
- ``ranking_agreement``: mean Kendall's tau-b (Kendall 1945, ties allowed) over pairs of reviewers
  who ranked the same task.
- ``agreement_over_time``: the alpha of the votes up to each day, for a plot.

Every statistic comes with the number of items and votes it rests on, and is None when it is
undefined (fewer than 2 items with at least 2 votes, or no variation at all), never an exception.

``reviewer_table`` puts per reviewer gold accuracy, agreement with a consensus, time per task,
position bias and tie share side by side and flags the outliers; ``exclude_reviewers`` drops the
flagged ones' votes before a dataset build.

Time per judgement and submission times come in as a separate frame ``judgement_id, reviewer_id,
time_spent_ms, submitted_at`` (``Judgement.objects.values(...)``): they belong to a judgement, not to
each of its answers, so ``JudgementRecord`` stays as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations

import krippendorff
import numpy as np
import pandas as pd
from scipy import stats

from labeling.aggregation.methods import position_bias
from labeling.aggregation.pairs import JudgementRecord

_PAIR_KEY = ["task_id", "a", "b"]
REVIEWER_COLUMNS = (
    "reviewer_id",
    "judgements",
    "votes",
    "gold_answered",
    "gold_accuracy",
    "consensus_votes",
    "agreement_with_consensus",
    "timed",
    "median_seconds",
    "n_decisive",
    "left_share",
    "position_p_value",
    "tie_share",
    "flags",
    "flagged",
)
FLAGS = ("low_gold_accuracy", "too_fast", "position_bias")


@dataclass(frozen=True, slots=True)
class Agreement:
    """One agreement statistic and what it rests on.

    ``measure`` is ``"percent_agreement"`` (a share, 0..1), ``"krippendorff_alpha"`` (1 perfect,
    0 chance, below 0 systematic disagreement) or ``"kendall_tau_b"`` (-1..1). ``level`` is the level
    of measurement, ``"nominal"`` or ``"ordinal"``. ``n_items`` counts the units with at least two
    votes (only those carry information), ``n_votes`` the votes on them and ``n_pairs`` the pairs of
    votes on the same unit that were compared. ``value`` is None when undefined.
    """

    measure: str
    level: str
    value: float | None
    n_items: int
    n_votes: int
    n_pairs: int


@dataclass(frozen=True, slots=True)
class PairwiseAgreement:
    """Output of ``pairwise_agreement``: three views of the same votes."""

    percent: Agreement
    outcome_alpha: Agreement
    strength_alpha: Agreement

    def to_frame(self) -> pd.DataFrame:
        """One row per statistic, columns as the fields of ``Agreement``; value NaN when undefined."""
        rows = [self.percent, self.outcome_alpha, self.strength_alpha]
        return pd.DataFrame(
            {
                "measure": [r.measure for r in rows],
                "level": [r.level for r in rows],
                "value": [np.nan if r.value is None else r.value for r in rows],
                "n_items": [r.n_items for r in rows],
                "n_votes": [r.n_votes for r in rows],
                "n_pairs": [r.n_pairs for r in rows],
            }
        )


def pairwise_agreement(pairs: pd.DataFrame) -> PairwiseAgreement:
    """Agreement of the votes in a pairs frame (``expand_pairs``), pairs of responses as units.

    - ``percent``: per pair with at least 2 votes, the share of its vote pairs that give the same
      outcome (a, tie or b), averaged over those pairs.
    - ``outcome_alpha``: nominal Krippendorff's alpha over the outcome {a, tie, b}.
    - ``strength_alpha``: ordinal alpha over the signed strength, ``+strength`` for a vote for ``a``,
      ``-strength`` for ``b``, 0 for a tie; "much better a" and "better a" then disagree less than
      "better a" and "better b".

    Every vote is one coder value, so a reviewer who judged a task twice counts twice. alpha is None with
    fewer than 2 units of at least 2 votes, or when every vote has the same value (no variation:
    alpha is 0/0); percent agreement is defined from one such unit on.
    """
    if pairs.empty:
        units = np.zeros(0, dtype=np.int64)
        outcome = signed = np.zeros(0)
    else:
        units = pairs.groupby(_PAIR_KEY, sort=False).ngroup().to_numpy()
        outcome = pairs["outcome"].to_numpy(np.float64)
        signed = pairs["strength"].to_numpy(np.float64) * np.sign(2.0 * outcome - 1.0)
    return PairwiseAgreement(
        percent=_percent_agreement(units, outcome),
        outcome_alpha=_alpha(units, outcome, level="nominal"),
        strength_alpha=_alpha(units, signed, level="ordinal"),
    )


def likert_agreement(records: Iterable[JudgementRecord], *, aspect: str | None = None) -> Agreement:
    """Ordinal Krippendorff's alpha of likert scores, with (task, response, aspect) as units.

    ``aspect`` picks one aspect; None pools all aspects, each (response, aspect) its own unit (scores
    are not averaged across aspects). Non-likert records and blank answers are skipped. Scores are
    scale points; the ordinal metric uses only their order and how often each is used.
    """
    tasks, responses, aspects, scores = [], [], [], []
    for record in records:
        if record.question_type != "likert" or not record.answer:
            continue
        for response_id, by_aspect in record.answer.items():
            for aspect_id, score in (by_aspect or {}).items():
                if aspect is not None and aspect_id != aspect:
                    continue
                tasks.append(record.task_id)
                responses.append(int(response_id))
                aspects.append(aspect_id)
                scores.append(float(score))
    if not scores:
        return _alpha(np.zeros(0, dtype=np.int64), np.zeros(0), level="ordinal")
    units = pd.DataFrame({"task": tasks, "response": responses, "aspect": aspects}).groupby(
        ["task", "response", "aspect"], sort=False
    )
    return _alpha(units.ngroup().to_numpy(), np.asarray(scores), level="ordinal")


def ranking_agreement(records: Iterable[JudgementRecord]) -> Agreement:
    """Mean Kendall's tau-b over pairs of judgements by different reviewers on the same ranking task.

    Each ranking becomes a rank per response (its group's position, so responses in one group tie);
    tau-b (``scipy.stats.kendalltau``) corrects for those ties. A pair where one ranking puts every
    response in one group has no tau and is left out. ``n_items`` counts the tasks with at least one
    compared pair, ``n_votes`` the rankings in those pairs, ``n_pairs`` the pairs averaged over.
    """
    by_task: dict[int, list[tuple[int, int, dict[int, int]]]] = {}
    for record in records:
        if record.question_type != "ranking" or not record.answer:
            continue
        rank = {int(rid): group for group, ids in enumerate(record.answer["order"]) for rid in ids}
        by_task.setdefault(record.task_id, []).append((record.judgement_id, record.reviewer_id, rank))

    taus: list[float] = []
    tasks: set[int] = set()
    judgements: set[int] = set()
    for task_id, rankings in by_task.items():
        for (id_x, reviewer_x, x), (id_y, reviewer_y, y) in combinations(rankings, 2):
            shared = sorted(set(x) & set(y))
            if reviewer_x == reviewer_y or len(shared) < 2:
                continue
            tau = stats.kendalltau([x[r] for r in shared], [y[r] for r in shared], variant="b").statistic
            if np.isnan(tau):
                continue
            taus.append(float(tau))
            tasks.add(task_id)
            judgements.update((id_x, id_y))
    return Agreement(
        measure="kendall_tau_b",
        level="ordinal",
        value=float(np.mean(taus)) if taus else None,
        n_items=len(tasks),
        n_votes=len(judgements),
        n_pairs=len(taus),
    )


def agreement_over_time(
    pairs: pd.DataFrame,
    *,
    judgements: pd.DataFrame,
    freq: str = "D",
    cumulative: bool = True,
) -> pd.DataFrame:
    """Agreement per period, for a plot: by default of all votes submitted up to the end of each period.

    ``judgements`` needs ``judgement_id, submitted_at`` (datetimes; naive ones are taken as UTC).
    Periods are ``submitted_at`` floored to ``freq``, a fixed pandas frequency (``"D"``, ``"6h"``,
    ``"7D"``), in UTC. Cumulative curves settle as votes accumulate and show whether the final
    number is stable; with ``cumulative`` False each period stands alone, which shows drift (a new
    reviewer, changed guidelines) but is noisy on quiet days.

    Columns ``period`` (its start, UTC), ``percent_agreement, outcome_alpha, strength_alpha, n_items,
    n_votes`` as in ``pairwise_agreement``, one row per period that has votes; undefined values are NaN.
    A vote whose judgement has no ``submitted_at`` raises ``ValueError``: it could not be placed in time.
    """
    columns = ["period", "percent_agreement", "outcome_alpha", "strength_alpha", "n_items", "n_votes"]
    if pairs.empty:
        return pd.DataFrame(
            {
                "period": pd.Series(dtype="datetime64[ns, UTC]"),
                **{name: pd.Series(dtype="float64") for name in columns[1:4]},
                "n_items": pd.Series(dtype="int64"),
                "n_votes": pd.Series(dtype="int64"),
            }
        )
    submitted = judgements.drop_duplicates("judgement_id").set_index("judgement_id")["submitted_at"]
    times = pd.to_datetime(pairs["judgement_id"].map(submitted), utc=True)
    if times.isna().any():
        missing = pairs.loc[times.isna(), "judgement_id"].unique()
        raise ValueError(f"{len(missing)} judgement(s) have no submitted_at, e.g. {missing[0]}")
    period = times.dt.floor(freq)
    rows = []
    for start in period.drop_duplicates().sort_values():
        window = pairs[(period <= start) if cumulative else (period == start)]
        result = pairwise_agreement(window)
        rows.append(
            (
                start,
                _value(result.percent),
                _value(result.outcome_alpha),
                _value(result.strength_alpha),
                result.percent.n_items,
                result.percent.n_votes,
            )
        )
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({"n_items": "int64", "n_votes": "int64"})


def reviewer_table(
    pairs: pd.DataFrame,
    *,
    consensus: pd.DataFrame,
    judgements: pd.DataFrame,
    gold_pairs: pd.DataFrame | None = None,
    gold_threshold: float = 0.7,
    min_gold: int = 5,
    fast_seconds: float | None = None,
    fast_relative: float = 0.25,
    min_timed: int = 5,
    position_margin: float = 0.15,
    position_p_value: float = 0.01,
) -> pd.DataFrame:
    """One row per reviewer: how much they did, how well, how fast, and flags for outliers.

    Inputs: ``pairs`` from ``expand_pairs``; ``consensus`` a verdict frame (``majority``,
    ``weighted``, ``bradley_terry(...).pairs``) with ``task_id, a, b, chosen, tie``; ``judgements``
    with ``judgement_id, reviewer_id, time_spent_ms`` (one row per judgement, extra columns
    ignored); ``gold_pairs`` as from ``pairs.gold_pairs``.

    Columns (``REVIEWER_COLUMNS``), all counts in votes on one pair of responses unless said:

    - ``judgements``: distinct judgements (in ``judgements`` or ``pairs``); ``votes``: rows of pairs.
    - ``gold_answered``: votes on gold pairs; ``gold_accuracy``: the share of them equal to the gold
      outcome (a tie on a gold pair is wrong), NaN when none.
    - ``consensus_votes``, ``agreement_with_consensus``: the reviewer's decisive votes on pairs with a
      non-tie consensus, and the share of them that picked the consensus ``chosen``. The reviewer's
      own vote is part of the consensus, which lifts this share, most with few votes per pair.
    - ``timed``, ``median_seconds``: judgements with a time, and their median time in seconds.
    - ``n_decisive``, ``left_share`` (``methods.position_bias``): the share of decisive votes that
      went to the response shown first, in the reviewer's shown order; ``position_p_value``: the
      two-sided binomial test of ``left_share = 0.5``, which holds for anyone when shown orders are
      randomized.
    - ``tie_share``: share of votes that are ties.
    - ``flags``: a list, from ``FLAGS``; ``flagged``: whether it is non-empty.

    Flags:

    - ``low_gold_accuracy``: ``gold_accuracy < gold_threshold`` on at least ``min_gold`` gold votes.
    - ``too_fast``: ``median_seconds`` below ``fast_seconds`` or, when that is None, below
      ``fast_relative`` times the median of the reviewers' medians (reviewers with at least
      ``min_timed`` timed judgements, who are also the only ones that can be flagged). The threshold
      used, in seconds, is in ``frame.attrs["fast_threshold_seconds"]``.
    - ``position_bias``: ``|left_share - 0.5| >= position_margin`` and ``position_p_value <
      position_p_value``: large enough to matter and unlikely to be chance.
    """
    pair_votes = pairs[["reviewer_id", "judgement_id"]]
    timing = judgements[["judgement_id", "reviewer_id", "time_spent_ms"]]
    reviewers = pd.Index(
        np.union1d(pair_votes["reviewer_id"].to_numpy(np.int64), timing["reviewer_id"].to_numpy(np.int64)),
        name="reviewer_id",
    )

    def per_reviewer(series: pd.Series, fill: float) -> np.ndarray:
        return series.reindex(reviewers, fill_value=fill).to_numpy()

    distinct = pd.concat([pair_votes, timing[["reviewer_id", "judgement_id"]]]).drop_duplicates()
    n_judgements = per_reviewer(distinct.groupby("reviewer_id").size(), 0).astype(np.int64)
    by_reviewer = pairs.groupby("reviewer_id")
    votes = per_reviewer(by_reviewer.size(), 0).astype(np.int64)
    ties = per_reviewer((pairs["outcome"] == 0.5).groupby(pairs["reviewer_id"]).sum(), 0).astype(np.float64)
    tie_share = np.where(votes > 0, ties / np.maximum(votes, 1), np.nan)

    # Gold: every vote on a gold pair, scored against the known outcome.
    gold_answered = np.zeros(len(reviewers), dtype=np.int64)
    gold_accuracy = np.full(len(reviewers), np.nan)
    if gold_pairs is not None and not gold_pairs.empty and not pairs.empty:
        on_gold = pairs.merge(gold_pairs[[*_PAIR_KEY, "outcome"]], on=_PAIR_KEY, suffixes=("", "_gold"))
        correct = (on_gold["outcome"] == on_gold["outcome_gold"]).groupby(on_gold["reviewer_id"])
        gold_answered = per_reviewer(correct.size(), 0).astype(np.int64)
        gold_accuracy = per_reviewer(correct.mean(), np.nan)

    # Consensus: the reviewer's decisive votes on pairs the consensus did not call a tie.
    decided = consensus.loc[~consensus["tie"].astype(bool), [*_PAIR_KEY, "chosen"]]
    decisive_votes = pairs[pairs["outcome"] != 0.5]
    matched = decisive_votes.merge(decided, on=_PAIR_KEY)
    winner = np.where(matched["outcome"].to_numpy() == 1.0, matched["a"].to_numpy(), matched["b"].to_numpy())
    agrees = pd.Series(winner == matched["chosen"].to_numpy(np.int64), index=matched.index, dtype="float64")
    by_consensus = agrees.groupby(matched["reviewer_id"])
    consensus_votes = per_reviewer(by_consensus.size(), 0).astype(np.int64)
    agreement_with_consensus = per_reviewer(by_consensus.mean(), np.nan)

    seconds = timing["time_spent_ms"].astype("float64") / 1000.0
    by_time = seconds.groupby(timing["reviewer_id"])
    timed = per_reviewer(by_time.count(), 0).astype(np.int64)
    median_seconds = per_reviewer(by_time.median(), np.nan)

    bias = position_bias(pairs).set_index("reviewer_id")
    n_decisive = per_reviewer(bias["n_decisive"], 0).astype(np.int64)
    left_share = per_reviewer(bias["left_share"], np.nan)
    left_count = np.rint(np.nan_to_num(left_share) * n_decisive)
    # Binomial(n, 1/2) is symmetric, so the two-sided p-value is twice the smaller tail.
    smaller_tail = stats.binom.cdf(np.minimum(left_count, n_decisive - left_count), n_decisive, 0.5)
    position_p = np.where(n_decisive > 0, np.minimum(1.0, 2.0 * smaller_tail), np.nan)

    enough_time = timed >= min_timed
    if fast_seconds is not None:
        fast_threshold = float(fast_seconds)
    elif enough_time.any():
        fast_threshold = fast_relative * float(np.median(median_seconds[enough_time]))
    else:
        fast_threshold = np.nan
    low_gold = (gold_answered >= min_gold) & (gold_accuracy < gold_threshold)
    too_fast = enough_time & (median_seconds < fast_threshold)
    biased = (np.abs(left_share - 0.5) >= position_margin) & (position_p < position_p_value)
    flags = [
        [name for name, hit in zip(FLAGS, row, strict=True) if hit]
        for row in zip(low_gold.tolist(), too_fast.tolist(), biased.tolist(), strict=True)
    ]

    table = pd.DataFrame(
        {
            "reviewer_id": reviewers.to_numpy(np.int64),
            "judgements": n_judgements,
            "votes": votes,
            "gold_answered": gold_answered,
            "gold_accuracy": gold_accuracy.astype(np.float64),
            "consensus_votes": consensus_votes,
            "agreement_with_consensus": agreement_with_consensus.astype(np.float64),
            "timed": timed,
            "median_seconds": median_seconds.astype(np.float64),
            "n_decisive": n_decisive,
            "left_share": left_share.astype(np.float64),
            "position_p_value": position_p.astype(np.float64),
            "tie_share": tie_share.astype(np.float64),
            "flags": pd.Series(flags, dtype="object"),
            "flagged": np.asarray([bool(f) for f in flags], dtype=bool),
        }
    )
    table.attrs["fast_threshold_seconds"] = fast_threshold
    return table


def exclude_reviewers(pairs: pd.DataFrame, *, table: pd.DataFrame, flags: Iterable[str] | None = None) -> pd.DataFrame:
    """``pairs`` without the votes of reviewers flagged in ``table`` (from ``reviewer_table``).

    ``flags`` limits which flags exclude (e.g. only ``"low_gold_accuracy"``); None means any flag.
    """
    wanted = set(FLAGS if flags is None else flags)
    unknown = wanted - set(FLAGS)
    if unknown:
        raise ValueError(f"unknown flag(s): {', '.join(sorted(unknown))}; expected some of {', '.join(FLAGS)}")
    hit = table["flags"].map(lambda names: bool(wanted.intersection(names)))
    excluded = table.loc[hit.astype(bool), "reviewer_id"]
    return pairs[~pairs["reviewer_id"].isin(excluded)].reset_index(drop=True)


def _value(result: Agreement) -> float:
    return np.nan if result.value is None else result.value


def _unit_counts(units: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (units with >= 2 votes) x (distinct values) count matrix, and the sorted distinct values."""
    keep = np.bincount(units, minlength=units.max() + 1)[units] >= 2 if len(units) else np.zeros(0, bool)
    unit_codes, unit_index = np.unique(units[keep], return_inverse=True)
    domain, value_index = np.unique(values[keep], return_inverse=True)
    counts = np.zeros((len(unit_codes), len(domain)), dtype=np.int64)
    np.add.at(counts, (unit_index, value_index), 1)
    return counts, domain


def _percent_agreement(units: np.ndarray, values: np.ndarray) -> Agreement:
    counts, _ = _unit_counts(units, values)
    n = counts.sum(axis=1)
    same = (counts * (counts - 1)).sum(axis=1)
    vote_pairs = n * (n - 1)
    value = float(np.mean(same / vote_pairs)) if len(n) else None
    return Agreement(
        measure="percent_agreement",
        level="nominal",
        value=value,
        n_items=len(n),
        n_votes=int(n.sum()),
        n_pairs=int(vote_pairs.sum() // 2),
    )


def _alpha(units: np.ndarray, values: np.ndarray, *, level: str) -> Agreement:
    """Krippendorff's alpha from value counts, so no reviewers x units matrix is built.

    Units with one vote add nothing to alpha (they have no pairable values), so dropping them first
    changes nothing but the counts reported.
    """
    counts, domain = _unit_counts(units, values)
    n = counts.sum(axis=1)
    value = None
    if len(n) >= 2 and len(domain) >= 2:
        value = float(krippendorff.alpha(value_counts=counts, value_domain=domain, level_of_measurement=level))
    return Agreement(
        measure="krippendorff_alpha",
        level=level,
        value=value,
        n_items=len(n),
        n_votes=int(n.sum()),
        n_pairs=int((n * (n - 1)).sum() // 2),
    )
