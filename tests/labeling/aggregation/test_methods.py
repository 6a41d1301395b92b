"""Aggregation methods: majority, Dawid-Skene reliability, weighted votes and Bradley-Terry."""

import choix
import numpy as np
import pandas as pd
import pytest

from labeling.aggregation import (
    VERDICT_COLUMNS,
    JudgementRecord,
    bradley_terry,
    empty_pairs,
    expand_pairs,
    gold_pairs,
    majority,
    margin_from_strength,
    position_bias,
    reviewer_reliability,
    vote_weights,
    weighted,
)


def vote(judgement_id, reviewer_id, winner, *, task_id=1, responses=(1, 2), strength=1, shown=None):
    answer = {"winner": winner, "strength": 0 if winner is None else strength, "both_bad": False}
    shown = tuple(shown or responses)
    return JudgementRecord(judgement_id, task_id, reviewer_id, "pairwise", answer, tuple(responses), shown)


def comparisons(task_id, outcomes):
    """Pairs rows from (a, b, outcome) triples, one reviewer per row."""
    return pd.DataFrame(
        {
            "task_id": task_id,
            "reviewer_id": np.arange(len(outcomes)),
            "judgement_id": np.arange(len(outcomes)),
            "a": [min(a, b) for a, b, _ in outcomes],
            "b": [max(a, b) for a, b, _ in outcomes],
            "outcome": [y if a < b else 1.0 - y for a, b, y in outcomes],
            "strength": [0 if y == 0.5 else 1 for _, _, y in outcomes],
            "left_first": pd.array([pd.NA] * len(outcomes), dtype="boolean"),
            "both_bad": False,
        }
    )


# --- majority and margins -------------------------------------------------------------------------


def test_it_takes_the_majority_with_ties_counting_half():
    pairs = expand_pairs(
        [
            vote(1, 1, 2, strength=2),
            vote(2, 2, 2, strength=2),
            vote(3, 3, 1),
            vote(4, 4, None),
        ]
    )
    verdict = majority(pairs).iloc[0]
    assert verdict["p_a"] == pytest.approx((0 + 0 + 1 + 0.5) / 4)
    assert verdict["n_votes"] == 4
    assert (verdict["chosen"], verdict["rejected"], verdict["tie"]) == (2, 1, False)
    assert verdict["agreement"] == pytest.approx(2 / 4)
    # Signed mean strength towards 2: (2 + 2 - 1 + 0) / 4 = 0.75, interpolated to margin 0.75.
    assert verdict["margin"] == pytest.approx(0.75)


def test_it_maps_strength_to_margin_with_interpolation_and_a_cap():
    assert margin_from_strength(np.array([0, 1, 1.5, 2, 3])).tolist() == [0.0, 1.0, 2.0, 3.0, 3.0]
    assert margin_from_strength(1, margin_map={1: 0.5, 2: 1.0, 3: 2.0}) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        margin_from_strength(1, margin_map={1: 2.0, 2: 1.0})


def test_it_calls_an_even_split_a_tie():
    verdict = majority(expand_pairs([vote(1, 1, 1), vote(2, 2, 2)])).iloc[0]
    assert verdict["tie"]
    assert pd.isna(verdict["chosen"]) and pd.isna(verdict["rejected"])
    assert verdict["agreement"] == 0.0  # one vote each way: nobody agrees on a tie
    assert verdict["margin"] == 0.0


# --- degenerate inputs ----------------------------------------------------------------------------


def test_it_returns_empty_frames_with_the_columns_for_empty_input():
    pairs = empty_pairs()
    assert tuple(majority(pairs).columns) == VERDICT_COLUMNS
    assert tuple(weighted(pairs, reliability={}).columns) == (*VERDICT_COLUMNS, "confidence")
    result = bradley_terry(pairs)
    assert result.scores.empty and tuple(result.scores.columns) == ("task_id", "response_id", "score")
    assert tuple(result.pairs.columns) == (*VERDICT_COLUMNS, "confidence")
    reliability = reviewer_reliability(pairs)
    assert reliability.reviewers.empty and reliability.posterior.empty
    assert position_bias(pairs).empty


def test_it_handles_a_single_vote():
    pairs = expand_pairs([vote(1, 9, 2, strength=2)])
    verdict = majority(pairs).iloc[0]
    assert (verdict["p_a"], verdict["agreement"], verdict["margin"], verdict["chosen"]) == (0.0, 1.0, 3.0, 2)
    reliability = reviewer_reliability(pairs)
    # One vote, which the reviewer "agrees with": the prior (0.7 over 10 votes) barely moves.
    assert reliability.reviewers["reliability"].iloc[0] == pytest.approx(0.7, abs=0.03)
    assert weighted(pairs, reliability=reliability.reliability).iloc[0]["chosen"] == 2
    bt = bradley_terry(pairs)
    assert bt.pairs.iloc[0]["chosen"] == 2
    assert bt.pairs.iloc[0]["p_a"] < 0.5


def test_it_gives_equal_scores_and_half_when_every_vote_is_a_tie():
    records = [
        JudgementRecord(j, 1, j, "ranking", {"order": [[1, 2, 3]]}, (1, 2, 3), (3, 1, 2)) for j in range(1, 4)
    ] + [vote(10 + j, j, None, task_id=2, responses=(4, 5)) for j in range(3)]
    pairs = expand_pairs(records)
    assert (pairs["outcome"] == 0.5).all()
    for verdicts in (majority(pairs), weighted(pairs, reliability={1: 0.9}), bradley_terry(pairs).pairs):
        assert (verdicts["p_a"] == 0.5).all()
        assert verdicts["tie"].all()
        assert verdicts["chosen"].isna().all()
        assert (verdicts["agreement"] == 1.0).all()
    scores = bradley_terry(pairs).scores
    assert np.allclose(scores["score"], 0.0)
    posterior = reviewer_reliability(pairs).posterior
    assert (posterior["p_a"] == 0.5).all()


def test_it_keeps_a_reviewer_with_one_vote_near_the_prior():
    # Reviewers 1-3 agree on 40 tasks; reviewer 4 votes once, against them.
    records = [vote(t * 10 + r, r, 2, task_id=t) for t in range(40) for r in (1, 2, 3)]
    records.append(vote(999, 4, 1, task_id=0))
    reliability = reviewer_reliability(expand_pairs(records)).reliability
    assert reliability[1] > 0.9
    assert reliability[4] == pytest.approx(0.7, abs=0.1)
    assert reliability[4] < 0.7
    assert reliability.between(0, 1, inclusive="neither").all()


def test_it_holds_gold_pairs_fixed():
    # On task 0 (gold: 1 beats 2) reviewers 1 and 2 pick 2 and reviewer 3 picks 1.
    records = [vote(r, r, 2 if r in (1, 2) else 1, task_id=0) for r in (1, 2, 3)]
    records[0] = JudgementRecord(1, 0, 1, "pairwise", records[0].answer, (1, 2), (1, 2), True, {"preferred": 0})
    pairs = expand_pairs(records)
    gold = gold_pairs(records)
    result = reviewer_reliability(pairs, gold_pairs=gold)
    posterior = result.posterior.iloc[0]
    assert posterior["is_gold"] and posterior["p_a"] == 1.0
    reliability = result.reliability
    assert reliability[3] > 0.7 > reliability[1]
    assert result.reviewers.set_index("reviewer_id")["n_gold"].tolist() == [1, 1, 1]
    # Without gold the majority (reviewers 1 and 2) would have won.
    assert reviewer_reliability(pairs).posterior.iloc[0]["p_a"] < 0.5


# --- Bradley-Terry against choix ------------------------------------------------------------------


def test_it_matches_choix_on_one_task_without_ties():
    # Responses 10, 20, 30, 40 are choix items 0..3. (winner, loser) comparisons, connected both ways.
    ids = [10, 20, 30, 40]
    won = [(0, 1), (0, 1), (1, 0), (0, 2), (2, 1), (1, 2), (1, 2), (2, 3), (3, 2), (2, 3), (0, 3), (3, 1)]
    alpha = 0.05
    expected = choix.opt_pairwise(4, won, alpha=alpha, tol=1e-10)
    pairs = comparisons(5, [(ids[w], ids[loser], 1.0) for w, loser in won])
    result = bradley_terry(pairs, l2=2 * alpha)
    scores = result.scores.set_index("response_id")["score"].loc[ids].to_numpy()
    assert result.converged
    assert list(np.argsort(-scores)) == list(np.argsort(-expected))
    # Both penalized fits centre the scores; differences agree to 1e-5 logits.
    np.testing.assert_allclose(scores - scores.mean(), expected - expected.mean(), atol=1e-5)


def test_it_matches_choix_with_ties_as_half_a_win():
    # A tie is half a win each way; doubling the data turns it into one win each way for choix
    # (and doubles the penalty: alpha = l2 for the doubled data).
    ids = [1, 2, 3]
    triples = [(1, 2, 1.0), (1, 2, 0.5), (2, 3, 1.0), (2, 3, 0.5), (1, 3, 0.5), (3, 1, 1.0), (1, 2, 1.0)]
    l2 = 0.1
    doubled = []
    for a, b, y in triples:
        i, j = ids.index(a), ids.index(b)
        doubled += [(i, j), (j, i)] if y == 0.5 else [(i, j), (i, j)]
    expected = choix.opt_pairwise(3, doubled, alpha=l2, tol=1e-10)
    scores = bradley_terry(comparisons(1, triples), l2=l2).scores.set_index("response_id")["score"].loc[ids]
    np.testing.assert_allclose(scores.to_numpy(), expected - expected.mean(), atol=1e-5)


def test_it_fits_tasks_independently_in_one_solve():
    one = comparisons(1, [(1, 2, 1.0), (2, 3, 1.0), (1, 3, 0.0)])
    two = comparisons(2, [(7, 8, 1.0), (7, 8, 1.0), (8, 9, 0.5)])
    joint = bradley_terry(pd.concat([one, two], ignore_index=True)).scores.set_index("response_id")["score"]
    alone = pd.concat([bradley_terry(one).scores, bradley_terry(two).scores]).set_index("response_id")["score"]
    np.testing.assert_allclose(joint.loc[alone.index], alone, atol=1e-8)


def test_it_uses_per_comparison_weights():
    pairs = comparisons(1, [(1, 2, 1.0), (1, 2, 0.0), (1, 2, 0.0)])
    assert bradley_terry(pairs).pairs.iloc[0]["chosen"] == 2
    # The lone vote for 1 outweighs the two others.
    assert bradley_terry(pairs, weights=np.array([3.0, 1.0, 1.0])).pairs.iloc[0]["chosen"] == 1
    with pytest.raises(ValueError):
        bradley_terry(pairs, weights=np.array([1.0, -1.0, 1.0]))


# --- synthetic reviewers --------------------------------------------------------------------------

EXPERTS, RANDOM, LEFT = (1, 2), (3, 4, 5, 6), 7


def simulate(seed, n_tasks=300, per_task=3):
    """Tasks of 2-4 responses with a hidden order, each judged by 3 of 7 reviewers in a random shown order.

    Reviewers 1-2 always give the true order, 3-6 a random one, and 7 always the shown order
    (picks the left response). Two-response tasks are pairwise questions, larger ones rankings.
    """
    rng = np.random.default_rng(seed)
    reviewers = np.array([*EXPERTS, *RANDOM, LEFT])
    records, truth = [], {}
    next_id = judgement_id = 1
    for task in range(n_tasks):
        k = int(rng.integers(2, 5))
        ids = list(range(next_id, next_id + k))
        next_id += k
        best_first = [ids[i] for i in rng.permutation(k)]
        rank = {r: i for i, r in enumerate(best_first)}
        truth.update({(task, a, b): (a if rank[a] < rank[b] else b) for a in ids for b in ids if a < b})
        for reviewer in rng.choice(reviewers, size=per_task, replace=False):
            shown = [ids[i] for i in rng.permutation(k)]
            if reviewer in EXPERTS:
                order = best_first
            elif reviewer == LEFT:
                order = shown
            else:
                order = [ids[i] for i in rng.permutation(k)]
            if k == 2:
                question_type, answer = "pairwise", {"winner": order[0], "strength": 1, "both_bad": False}
            else:
                question_type, answer = "ranking", {"order": [[r] for r in order]}
            records.append(
                JudgementRecord(judgement_id, task, int(reviewer), question_type, answer, tuple(ids), tuple(shown))
            )
            judgement_id += 1
    return expand_pairs(records), truth


def accuracy(verdicts, truth):
    """Share of pairs whose chosen response is the truly better one; a tie counts half."""
    scored = [
        0.5 if tie else float(chosen == truth[(task, a, b)])
        for task, a, b, chosen, tie in verdicts[["task_id", "a", "b", "chosen", "tie"]].itertuples(index=False)
    ]
    assert len(scored) == len(truth)
    return float(np.mean(scored))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_it_recovers_the_truth_better_with_reliability_than_majority(seed):
    pairs, truth = simulate(seed)
    reliability = reviewer_reliability(pairs)
    assert reliability.converged

    by_majority = accuracy(majority(pairs), truth)
    by_weight = accuracy(weighted(pairs, reliability=reliability.reliability), truth)
    weights = vote_weights(pairs, reliability=reliability.reliability)
    by_bradley_terry = accuracy(bradley_terry(pairs, weights=weights).pairs, truth)
    # Measured (seeds 0, 1, 2): majority 0.730 / 0.719 / 0.714, weighted 0.863 / 0.843 / 0.852,
    # reliability-weighted Bradley-Terry 0.862 / 0.841 / 0.860 (unweighted: 0.714 / 0.693 / 0.692).
    assert by_weight >= by_majority + 0.08
    assert by_bradley_terry >= by_majority + 0.08

    estimated = reliability.reliability
    assert (estimated.loc[list(EXPERTS)] > 0.95).all()
    assert (estimated.loc[list(RANDOM)].sub(0.5).abs() < 0.1).all()


def test_it_detects_the_reviewer_who_always_picks_the_left_response():
    pairs, _ = simulate(0)
    bias = position_bias(pairs).set_index("reviewer_id")["left_share"]
    assert bias[LEFT] == 1.0
    assert (bias.drop(LEFT).sub(0.5).abs() < 0.1).all()
    # Left is random with respect to quality, so EM sees a coin flip, far below the experts.
    estimated = reviewer_reliability(pairs).reliability
    assert abs(estimated[LEFT] - 0.5) < 0.1
    assert estimated[LEFT] < estimated.loc[list(EXPERTS)].min() - 0.3


def test_it_fits_tasks_with_different_numbers_of_responses_together():
    # Tasks of 2, 3 and 4 responses are solved in separate blocks of one Newton step.
    tasks = [
        comparisons(1, [(1, 2, 1.0), (1, 2, 0.0), (1, 2, 1.0)]),
        comparisons(2, [(5, 6, 1.0), (6, 7, 0.5), (5, 7, 1.0)]),
        comparisons(3, [(11, 12, 1.0), (12, 13, 1.0), (13, 14, 0.0), (11, 14, 1.0), (12, 14, 0.5)]),
    ]
    joint = bradley_terry(pd.concat(tasks, ignore_index=True))
    alone = pd.concat([bradley_terry(task).scores for task in tasks]).set_index("response_id")["score"]
    np.testing.assert_allclose(joint.scores.set_index("response_id")["score"].loc[alone.index], alone, atol=1e-8)
    for task_id, task in enumerate(tasks, start=1):
        ids = sorted(set(task["a"]) | set(task["b"]))
        won = []
        for row in task.itertuples():
            i, j = ids.index(row.a), ids.index(row.b)
            won += [(i, j), (j, i)] if row.outcome == 0.5 else [(i, j), (i, j)] if row.outcome else [(j, i), (j, i)]
        expected = choix.opt_pairwise(len(ids), won, alpha=0.1, tol=1e-10)
        scores = joint.scores[joint.scores["task_id"] == task_id].set_index("response_id")["score"].loc[ids]
        np.testing.assert_allclose(scores.to_numpy(), expected - expected.mean(), atol=1e-5)


def test_verdicts_do_not_depend_on_the_order_of_the_rows():
    pairs = pd.concat(
        [comparisons(2, [(5, 6, 1.0), (6, 7, 0.5), (5, 7, 1.0)]), comparisons(1, [(1, 2, 0.0), (1, 2, 1.0)])],
        ignore_index=True,
    )
    shuffled = pairs.sample(frac=1.0, random_state=3).reset_index(drop=True)
    for method in (majority, lambda frame: bradley_terry(frame).pairs):
        pd.testing.assert_frame_equal(method(shuffled), method(pairs.sort_values(["task_id", "a", "b"])))
