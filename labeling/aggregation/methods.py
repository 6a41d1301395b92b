"""Aggregate pairwise votes (see ``pairs.expand_pairs``) into one verdict per (task, a, b).

Three methods, from simplest to most informed:

- ``majority``: vote shares, ties counting half.
- ``weighted``: the same shares with each vote weighted by its reviewer's log-odds reliability, as
  estimated by ``reviewer_reliability`` (Dawid & Skene 1979, one-coin model).
- ``bradley_terry``: one score per response from a Bradley-Terry model (Bradley & Terry 1952) fitted
  per task, optionally with the same reliability weights; it pools all pairs of a task, so the
  verdict on one pair also uses the other pairs (transitivity).

Every verdict frame has ``task_id, a, b, p_a, n_votes, agreement, margin, chosen, rejected, tie,
both_bad_share``; ``weighted`` and ``bradley_terry`` add ``confidence``, the model's probability
that ``chosen`` is the better response. Nothing here imports Django or touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit, log_expit, logit

# Strength (the reviewer's "better" = 1, "much better" = 2, ...) to reward-model margin, in the
# spirit of Llama 2's margin loss (Touvron et al. 2023, section 3.2.2): a clear preference should
# separate the rewards by more. Values between the keys are interpolated, values past the last key
# take the last margin, and strength 0 (a tie) is margin 0.
DEFAULT_MARGIN_MAP: Mapping[int, float] = {1: 1.0, 2: 3.0}

VERDICT_COLUMNS = (
    "task_id",
    "a",
    "b",
    "p_a",
    "n_votes",
    "agreement",
    "margin",
    "chosen",
    "rejected",
    "tie",
    "both_bad_share",
)
_PAIR_KEY = ["task_id", "a", "b"]
# Probabilities this close to 0.5 (score differences this close to 0) are ties; it only absorbs
# floating-point noise, any real evidence is far larger.
_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class ReliabilityResult:
    """Output of ``reviewer_reliability``.

    ``reviewers``: ``reviewer_id, reliability, n_votes, n_decisive, n_gold``; reliability is the
    estimated probability (0..1) that the reviewer picks the truly better response of a pair.
    ``posterior``: ``task_id, a, b, p_a, is_gold``; p_a is the posterior probability that ``a`` is
    better. ``n_iter`` EM iterations ran; ``converged`` says whether the tolerance was reached.
    """

    reviewers: pd.DataFrame
    posterior: pd.DataFrame
    n_iter: int
    converged: bool

    @property
    def reliability(self) -> pd.Series:
        """Reliability indexed by reviewer id, the form ``weighted`` and ``vote_weights`` take."""
        return self.reviewers.set_index("reviewer_id")["reliability"]


@dataclass(frozen=True, slots=True)
class BradleyTerryResult:
    """Output of ``bradley_terry``.

    ``scores``: ``task_id, response_id, score`` with scores in logits, centred per task by the L2
    penalty; only differences within a task mean anything. ``pairs``: the verdict frame.
    """

    scores: pd.DataFrame
    pairs: pd.DataFrame
    n_iter: int
    converged: bool


def margin_from_strength(
    strength: float | np.ndarray | pd.Series, *, margin_map: Mapping[int, float] = DEFAULT_MARGIN_MAP
) -> np.ndarray:
    """Map a (mean) preference strength to a reward margin, interpolating linearly between keys.

    ``margin_map`` maps strength levels (positive, e.g. 1 = "better", 2 = "much better") to margins
    in reward units; strength 0 maps to 0 and strengths past the last key to the last margin.
    """
    if not margin_map:
        raise ValueError("margin_map needs at least one strength level")
    levels = np.asarray(sorted(margin_map), dtype=np.float64)
    margins = np.asarray([margin_map[level] for level in sorted(margin_map)], dtype=np.float64)
    if levels[0] <= 0 or np.any(np.diff(margins) < 0) or margins[0] < 0:
        raise ValueError("margin_map needs positive strength levels with non-negative, non-decreasing margins")
    return np.interp(np.asarray(strength, dtype=np.float64), np.r_[0.0, levels], np.r_[0.0, margins])


def majority(pairs: pd.DataFrame, *, margin_map: Mapping[int, float] = DEFAULT_MARGIN_MAP) -> pd.DataFrame:
    """Plain vote shares per (task_id, a, b).

    ``p_a`` is the share of votes for ``a`` with ties counting half; ``p_a`` of exactly 0.5 is a tie.
    ``agreement`` is the share of all votes that picked the chosen side (ties never count as
    agreeing); for a tied verdict it is the share of tie votes. ``margin`` maps the mean strength of
    the votes, signed towards the chosen side and floored at 0, through ``margin_map``; so dissent
    shrinks the margin.
    """
    if pairs.empty:
        return _empty_verdicts(confidence=False)
    index, keys = _pair_index(pairs)
    p_a = np.bincount(index, weights=pairs["outcome"].to_numpy(np.float64)) / np.bincount(index)
    return _verdicts(pairs, index, keys, p_a, tie=np.abs(p_a - 0.5) <= _TIE_TOLERANCE, margin_map=margin_map)


def reviewer_reliability(
    pairs: pd.DataFrame,
    *,
    gold_pairs: pd.DataFrame | None = None,
    prior_accuracy: float = 0.7,
    prior_strength: float = 10.0,
    max_iter: int = 200,
    tol: float = 1e-6,
) -> ReliabilityResult:
    """Estimate each reviewer's accuracy and each pair's true outcome by EM (Dawid & Skene 1979).

    Model ("one-coin" Dawid-Skene): every pair has a hidden winner, ``a`` or ``b`` with equal prior
    odds (the canonical order is arbitrary). Reviewer r names the true winner with probability
    ``reliability[r]``, whatever the pair and whichever side it is on. Tie votes carry no evidence
    in this binary model and are left out of the fit (they still count in ``n_votes``).

    - E-step: ``logit(p_a) = sum over votes of ±logit(reliability)`` (+ for a vote for ``a``).
    - M-step: ``reliability = (expected correct votes + prior_accuracy * prior_strength)
      / (decisive votes + prior_strength)``, the posterior mean under a Beta prior worth
      ``prior_strength`` votes at ``prior_accuracy``. It keeps reviewers with few votes near the
      prior and every reliability strictly inside (0, 1).

    ``gold_pairs`` (``task_id, a, b, outcome``, e.g. ``pairs.gold_pairs``) fixes those pairs'
    posteriors to the known outcome, so gold items anchor the reviewers' accuracies. EM starts from
    the majority vote and stops when no reliability moves by more than ``tol``. Each iteration is a
    pair of sparse matrix-vector products over the votes.
    """
    if not 0 < prior_accuracy < 1 or prior_strength <= 0:
        raise ValueError("prior_accuracy must be in (0, 1) and prior_strength positive")
    if pairs.empty:
        reviewers = pd.DataFrame(
            {
                "reviewer_id": pd.Series(dtype="int64"),
                "reliability": pd.Series(dtype="float64"),
                "n_votes": pd.Series(dtype="int64"),
                "n_decisive": pd.Series(dtype="int64"),
                "n_gold": pd.Series(dtype="int64"),
            }
        )
        posterior = pd.DataFrame(
            {
                "task_id": pd.Series(dtype="int64"),
                "a": pd.Series(dtype="int64"),
                "b": pd.Series(dtype="int64"),
                "p_a": pd.Series(dtype="float64"),
                "is_gold": pd.Series(dtype="bool"),
            }
        )
        return ReliabilityResult(reviewers=reviewers, posterior=posterior, n_iter=0, converged=True)

    index, keys = _pair_index(pairs)
    n_items = len(keys)
    reviewer_code, reviewer_ids = pd.factorize(pairs["reviewer_id"], sort=True)
    n_reviewers = len(reviewer_ids)
    outcome = pairs["outcome"].to_numpy(np.float64)

    gold_value = np.full(n_items, np.nan)
    if gold_pairs is not None and not gold_pairs.empty:
        located = keys.reset_index().merge(gold_pairs[[*_PAIR_KEY, "outcome"]], on=_PAIR_KEY, how="inner")
        gold_value[located["index"].to_numpy()] = located["outcome"].to_numpy(np.float64)
    is_gold = ~np.isnan(gold_value)

    decisive = outcome != 0.5
    item, rater = index[decisive], reviewer_code[decisive]
    voted_a = outcome[decisive]  # 1.0 for a vote for a, 0.0 for b
    n_decisive = np.bincount(rater, minlength=n_reviewers).astype(np.float64)
    alpha = prior_accuracy * prior_strength
    # Each EM step is two sparse products with the reviewers x pairs matrix of signed votes (+1 for
    # a, -1 for b): a reviewer's expected correct votes are sum(votes for b) + votes . p_a, and a
    # pair's log-odds are sum over its votes of sign * logit(reliability).
    signed_votes = sparse.csr_matrix(
        (2.0 * voted_a - 1.0, (rater, item)), shape=(n_reviewers, n_items), dtype=np.float64
    )
    votes_for_b = np.bincount(rater, weights=1.0 - voted_a, minlength=n_reviewers)

    # Majority start: the soft share of decisive votes for a; pairs with none stay at 0.5.
    votes = np.bincount(item, minlength=n_items)
    posterior = np.where(votes > 0, np.bincount(item, weights=voted_a, minlength=n_items) / np.maximum(votes, 1), 0.5)
    posterior = np.where(is_gold, gold_value, posterior)
    reliability = np.full(n_reviewers, prior_accuracy)
    converged = False
    n_iter = 0
    for iteration in range(1, max_iter + 1):
        n_iter = iteration
        expected_correct = votes_for_b + signed_votes @ posterior
        updated = (expected_correct + alpha) / (n_decisive + prior_strength)
        log_odds = signed_votes.T @ logit(updated)
        posterior = np.where(is_gold, gold_value, expit(log_odds))
        change = float(np.max(np.abs(updated - reliability)))
        reliability = updated
        if change < tol:
            converged = True
            break

    reviewers = pd.DataFrame(
        {
            "reviewer_id": np.asarray(reviewer_ids, dtype=np.int64),
            "reliability": reliability,
            "n_votes": np.bincount(reviewer_code, minlength=n_reviewers).astype(np.int64),
            "n_decisive": n_decisive.astype(np.int64),
            "n_gold": np.bincount(reviewer_code, weights=is_gold[index], minlength=n_reviewers).astype(np.int64),
        }
    )
    posterior_frame = keys.assign(p_a=posterior, is_gold=is_gold)
    return ReliabilityResult(reviewers=reviewers, posterior=posterior_frame, n_iter=n_iter, converged=converged)


def vote_weights(
    pairs: pd.DataFrame,
    *,
    reliability: Mapping[int, float] | pd.Series,
    missing_reliability: float = 0.7,
    min_weight: float = 1e-3,
) -> np.ndarray:
    """One weight per row of ``pairs``: the log-odds ``log(r / (1 - r))`` of its reviewer's reliability.

    Log-odds are the weights under which a weighted vote is the one-coin Dawid-Skene posterior.
    Reviewers no better than chance (r <= 0.5) would get weight 0 or a negative one that flips their
    votes; they are floored at ``min_weight`` instead, so they add nothing where a reliable reviewer
    voted and a pair seen only by them is still decided by their plain majority. Reviewers missing
    from ``reliability`` get ``missing_reliability``.
    """
    mapping = reliability if isinstance(reliability, pd.Series) else pd.Series(dict(reliability), dtype="float64")
    r = pairs["reviewer_id"].map(mapping).fillna(missing_reliability).to_numpy(np.float64)
    return np.maximum(logit(np.clip(r, 1e-6, 1 - 1e-6)), min_weight)


def weighted(
    pairs: pd.DataFrame,
    *,
    reliability: Mapping[int, float] | pd.Series,
    missing_reliability: float = 0.7,
    margin_map: Mapping[int, float] = DEFAULT_MARGIN_MAP,
) -> pd.DataFrame:
    """Vote shares weighted by reviewer reliability (see ``vote_weights``) per (task_id, a, b).

    Same columns as ``majority``, where ``p_a`` is the weighted share (ties count half), plus
    ``confidence``: the one-coin posterior ``sigmoid(sum ±weight)`` that ``chosen`` is better
    (0.5 for a tie). ``agreement`` and ``margin`` are computed from the raw votes as in ``majority``.
    """
    if pairs.empty:
        return _empty_verdicts(confidence=True)
    index, keys = _pair_index(pairs)
    weight = vote_weights(pairs, reliability=reliability, missing_reliability=missing_reliability)
    outcome = pairs["outcome"].to_numpy(np.float64)
    p_a = np.bincount(index, weights=weight * outcome) / np.bincount(index, weights=weight)
    tie = np.abs(p_a - 0.5) <= _TIE_TOLERANCE
    posterior = expit(np.bincount(index, weights=weight * (2.0 * outcome - 1.0)))
    verdicts = _verdicts(pairs, index, keys, p_a, tie=tie, margin_map=margin_map)
    verdicts["confidence"] = np.where(tie, 0.5, np.maximum(posterior, 1.0 - posterior))
    return verdicts


def bradley_terry(
    pairs: pd.DataFrame,
    *,
    weights: np.ndarray | pd.Series | None = None,
    l2: float = 0.1,
    max_iter: int = 100,
    tol: float = 1e-9,
    margin_map: Mapping[int, float] = DEFAULT_MARGIN_MAP,
) -> BradleyTerryResult:
    """Fit a Bradley-Terry model (Bradley & Terry 1952) per task, all tasks at once by Newton's method.

    Each response gets a score s (logits); ``P(a beats b) = sigmoid(s_a - s_b)``. The fit maximizes
    ``sum_k w_k [y_k log sigmoid(s_a - s_b) + (1 - y_k) log sigmoid(s_b - s_a)] - l2 / 2 * |s|^2``
    where y is 1, 0, or 0.5 for a tie (half a win each way) and w are the optional per-row
    ``weights`` (e.g. ``vote_weights``; 1 when None). The L2 term (units 1/logit^2; a Gaussian prior
    with variance 1/l2) keeps unanimous pairs finite and pins each task's scores to mean 0; with
    ``l2 = 2 * alpha`` the optimum equals ``choix.opt_pairwise(..., alpha=alpha)``.

    Responses of different tasks never meet, so the Hessian is block diagonal by task. Each Newton
    step solves the k x k blocks of all tasks with k responses in one batched dense solve (plus a
    backtracking line search over all tasks at once). ``pairs`` of the verdict are the observed
    pairs, with ``p_a = sigmoid(s_a - s_b)``, ``confidence = max(p_a, 1 - p_a)`` and a tie where the
    scores are equal; ``agreement`` and ``margin`` come from the raw votes as in ``majority``.
    """
    if l2 <= 0:
        raise ValueError("l2 must be positive: without it unanimous pairs have infinite scores")
    if pairs.empty:
        scores = pd.DataFrame(
            {
                "task_id": pd.Series(dtype="int64"),
                "response_id": pd.Series(dtype="int64"),
                "score": pd.Series(dtype="float64"),
            }
        )
        return BradleyTerryResult(scores=scores, pairs=_empty_verdicts(confidence=True), n_iter=0, converged=True)
    weight = np.ones(len(pairs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if weight.shape != (len(pairs),) or np.any(weight < 0) or not np.all(np.isfinite(weight)):
        raise ValueError("weights must be one finite, non-negative number per row of pairs")

    index, keys = _pair_index(pairs)
    wins_a = np.bincount(index, weights=weight * pairs["outcome"].to_numpy(np.float64))
    total = np.bincount(index, weights=weight)

    # One parameter per response. Response ids belong to one task each, so factorizing the plain
    # int64 ids is enough; the task of each response is read back from the pairs, and a response
    # seen under two tasks is an error.
    task = keys["task_id"].to_numpy()
    response_code, response_ids = pd.factorize(np.r_[keys["a"].to_numpy(), keys["b"].to_numpy()], sort=True)
    n_pairs, n_responses = len(keys), len(response_ids)
    response_task = np.empty(n_responses, dtype=np.int64)
    response_task[response_code] = np.r_[task, task]
    if np.any(response_task[response_code] != np.r_[task, task]):
        raise ValueError("a response id appears under more than one task")
    code_a, code_b = response_code[:n_pairs], response_code[n_pairs:]
    blocks = _task_blocks(response_task, code_a, code_b)

    def objective(s: np.ndarray) -> float:
        d = s[code_a] - s[code_b]
        return float(-(wins_a @ log_expit(d) + (total - wins_a) @ log_expit(-d)) + 0.5 * l2 * s @ s)

    scores = np.zeros(n_responses)
    value = objective(scores)
    converged = False
    n_iter = 0
    for iteration in range(1, max_iter + 1):
        n_iter = iteration
        p = expit(scores[code_a] - scores[code_b])
        residual = total * p - wins_a
        gradient = (
            np.bincount(code_a, weights=residual, minlength=n_responses)
            - np.bincount(code_b, weights=residual, minlength=n_responses)
            + l2 * scores
        )
        curvature = total * p * (1.0 - p)
        step = np.empty(n_responses)
        for block in blocks:
            step[block.responses] = block.solve(curvature, gradient, l2)
        # Newton on a concave likelihood rarely needs damping, but large scores after unanimous votes
        # can overshoot on the first steps; halve until the objective does not get worse.
        size = 1.0
        while True:
            candidate = scores - size * step
            candidate_value = objective(candidate)
            if candidate_value <= value + 1e-12 or size < 1e-6:
                break
            size /= 2.0
        scores, value = candidate, candidate_value
        if float(np.max(np.abs(size * step))) < tol:
            converged = True
            break

    d = scores[code_a] - scores[code_b]
    p_a = expit(d)
    tie = np.abs(d) <= _TIE_TOLERANCE
    verdicts = _verdicts(pairs, index, keys, p_a, tie=tie, margin_map=margin_map)
    verdicts["confidence"] = np.where(tie, 0.5, np.maximum(p_a, 1.0 - p_a))
    score_frame = pd.DataFrame(
        {
            "task_id": response_task,
            "response_id": np.asarray(response_ids, dtype=np.int64),
            "score": scores,
        }
    ).sort_values(["task_id", "response_id"], ignore_index=True)
    return BradleyTerryResult(scores=score_frame, pairs=verdicts, n_iter=n_iter, converged=converged)


@dataclass(frozen=True, slots=True)
class _TaskBlock:
    """The tasks with ``k`` responses, for Newton steps on their k x k Hessian blocks all at once.

    ``responses`` (n_tasks x k) are response codes, a task per row; ``pairs`` are the pairs of
    these tasks and ``cell_ab``/``cell_ba``/``cell_aa``/``cell_bb`` their entries' positions in the
    flattened (n_tasks, k, k) stack.
    """

    responses: np.ndarray
    pairs: np.ndarray
    cell_ab: np.ndarray
    cell_ba: np.ndarray
    cell_aa: np.ndarray
    cell_bb: np.ndarray

    def solve(self, curvature: np.ndarray, gradient: np.ndarray, l2: float) -> np.ndarray:
        n_tasks, k = self.responses.shape
        c = curvature[self.pairs]
        cells = np.concatenate([self.cell_aa, self.cell_bb, self.cell_ab, self.cell_ba])
        hessian = np.bincount(cells, weights=np.concatenate([c, c, -c, -c]), minlength=n_tasks * k * k)
        hessian = hessian.reshape(n_tasks, k, k)
        hessian[:, np.arange(k), np.arange(k)] += l2
        return np.linalg.solve(hessian, gradient[self.responses][..., None])[..., 0]


def _task_blocks(response_task: np.ndarray, code_a: np.ndarray, code_b: np.ndarray) -> list[_TaskBlock]:
    """Group the tasks by their number of responses: the Hessian is block diagonal by task."""
    order = np.lexsort((np.arange(len(response_task)), response_task))
    task_of_sorted = response_task[order]
    starts = np.r_[True, task_of_sorted[1:] != task_of_sorted[:-1]]
    task_index = np.cumsum(starts) - 1  # per sorted response: which task
    first = np.flatnonzero(starts)
    sizes = np.diff(np.r_[first, len(order)])
    local = np.arange(len(order)) - first[task_index]  # position of the response within its task
    task_of = np.empty(len(order), dtype=np.int64)
    local_of = np.empty(len(order), dtype=np.int64)
    task_of[order], local_of[order] = task_index, local
    pair_task = task_of[code_a]
    blocks = []
    for k in np.unique(sizes):
        tasks = np.flatnonzero(sizes == k)
        row_of_task = np.full(len(sizes), -1)
        row_of_task[tasks] = np.arange(len(tasks))
        responses = order[first[tasks][:, None] + np.arange(k)]
        pairs = np.flatnonzero(sizes[pair_task] == k)
        base = row_of_task[pair_task[pairs]] * k * k
        la, lb = local_of[code_a[pairs]], local_of[code_b[pairs]]
        blocks.append(
            _TaskBlock(
                responses=responses,
                pairs=pairs,
                cell_ab=base + la * k + lb,
                cell_ba=base + lb * k + la,
                cell_aa=base + la * k + la,
                cell_bb=base + lb * k + lb,
            )
        )
    return blocks


def position_bias(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per reviewer, how often the preferred response was the one shown first (left/top).

    Columns ``reviewer_id, n_decisive, left_share``; ties are left out. With randomized shown orders
    an unbiased reviewer is near 0.5; one who always clicks the left response is at 1.0.
    """
    decided = pairs[pairs["left_first"].notna()]
    if decided.empty:
        return pd.DataFrame(
            {
                "reviewer_id": pd.Series(dtype="int64"),
                "n_decisive": pd.Series(dtype="int64"),
                "left_share": pd.Series(dtype="float64"),
            }
        )
    grouped = decided.groupby("reviewer_id")["left_first"]
    return pd.DataFrame(
        {"n_decisive": grouped.size().astype(np.int64), "left_share": grouped.mean().astype(np.float64)}
    ).reset_index()


def _pair_index(pairs: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """A dense code per row for its (task_id, a, b), and the keys in code order (sorted).

    ``expand_pairs`` returns its rows sorted by that key, so the codes usually come from comparing
    each row with the one before it; other frames are sorted first.
    """
    task, a, b = (pairs[column].to_numpy(np.int64) for column in _PAIR_KEY)
    if not _sorted_by_key(task, a, b):
        order = np.lexsort((b, a, task))
        index = np.empty(len(order), dtype=np.int64)
        sorted_index, keys = _pair_index(pd.DataFrame({"task_id": task[order], "a": a[order], "b": b[order]}))
        index[order] = sorted_index
        return index, keys
    starts = np.r_[True, (task[1:] != task[:-1]) | (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    index = np.cumsum(starts) - 1
    keys = pd.DataFrame({"task_id": task[starts], "a": a[starts], "b": b[starts]})
    return index, keys


def _sorted_by_key(task: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the rows are in (task, a, b) order."""
    if len(task) < 2:
        return True
    task_step, a_step, b_step = np.diff(task), np.diff(a), np.diff(b)
    return bool(np.all((task_step > 0) | ((task_step == 0) & ((a_step > 0) | ((a_step == 0) & (b_step >= 0))))))


def _verdicts(
    pairs: pd.DataFrame,
    index: np.ndarray,
    keys: pd.DataFrame,
    p_a: np.ndarray,
    *,
    tie: np.ndarray,
    margin_map: Mapping[int, float],
) -> pd.DataFrame:
    """The columns every method shares, given each pair's p_a and whether the verdict is a tie."""
    outcome = pairs["outcome"].to_numpy(np.float64)
    n_items = len(keys)
    n_votes = np.bincount(index, minlength=n_items)
    votes_a = np.bincount(index, weights=outcome == 1.0, minlength=n_items)
    votes_b = np.bincount(index, weights=outcome == 0.0, minlength=n_items)
    votes_tie = n_votes - votes_a - votes_b
    a_chosen = (p_a > 0.5) & ~tie
    agreement = np.where(tie, votes_tie, np.where(a_chosen, votes_a, votes_b)) / n_votes

    # Strength signed towards a, averaged over all votes, then turned towards the chosen side.
    signed = pairs["strength"].to_numpy(np.float64) * (2.0 * outcome - 1.0)
    mean_towards_a = np.bincount(index, weights=signed, minlength=n_items) / n_votes
    towards_chosen = np.where(tie, 0.0, np.where(a_chosen, mean_towards_a, -mean_towards_a))
    margin = margin_from_strength(np.maximum(towards_chosen, 0.0), margin_map=margin_map)

    a, b = keys["a"].to_numpy(), keys["b"].to_numpy()
    chosen = pd.array(np.where(a_chosen, a, b), dtype="Int64")
    rejected = pd.array(np.where(a_chosen, b, a), dtype="Int64")
    chosen[tie] = pd.NA
    rejected[tie] = pd.NA
    both_bad = np.bincount(index, weights=pairs["both_bad"].to_numpy(bool), minlength=n_items) / n_votes
    return keys.assign(
        p_a=p_a,
        n_votes=n_votes.astype(np.int64),
        agreement=agreement,
        margin=margin,
        chosen=chosen,
        rejected=rejected,
        tie=tie,
        both_bad_share=both_bad,
    )


def _empty_verdicts(*, confidence: bool) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "task_id": pd.Series(dtype="int64"),
            "a": pd.Series(dtype="int64"),
            "b": pd.Series(dtype="int64"),
            "p_a": pd.Series(dtype="float64"),
            "n_votes": pd.Series(dtype="int64"),
            "agreement": pd.Series(dtype="float64"),
            "margin": pd.Series(dtype="float64"),
            "chosen": pd.Series(dtype="Int64"),
            "rejected": pd.Series(dtype="Int64"),
            "tie": pd.Series(dtype="bool"),
            "both_bad_share": pd.Series(dtype="float64"),
        }
    )
    if confidence:
        frame["confidence"] = pd.Series(dtype="float64")
    return frame
