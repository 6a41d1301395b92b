"""Agreement statistics and the reviewer quality table."""

import krippendorff
import numpy as np
import pandas as pd
import pytest

from labeling.aggregation import (
    FLAGS,
    REVIEWER_COLUMNS,
    JudgementRecord,
    agreement_over_time,
    empty_pairs,
    exclude_reviewers,
    expand_pairs,
    gold_pairs,
    likert_agreement,
    majority,
    pairwise_agreement,
    ranking_agreement,
    reviewer_table,
)


def vote(judgement_id, reviewer_id, winner, *, task_id=1, responses=(1, 2), strength=1, shown=None, gold=None):
    answer = {"winner": winner, "strength": 0 if winner is None else strength, "both_bad": False}
    return JudgementRecord(
        judgement_id,
        task_id,
        reviewer_id,
        "pairwise",
        answer,
        tuple(responses),
        tuple(shown or responses),
        gold is not None,
        gold,
    )


def votes_on(task_id, winners, *, strengths=None, first_judgement=None):
    """One pairwise vote per reviewer 1, 2, ... on task ``task_id`` (responses 10t+1, 10t+2).

    ``winners`` are "a", "b" or None (tie); ``strengths`` default to 1.
    """
    responses = (10 * task_id + 1, 10 * task_id + 2)
    start = first_judgement if first_judgement is not None else 100 * task_id
    strengths = strengths or [1] * len(winners)
    return [
        vote(
            start + i,
            i + 1,
            None if w is None else responses[w == "b"],
            task_id=task_id,
            responses=responses,
            strength=s,
        )
        for i, (w, s) in enumerate(zip(winners, strengths, strict=True))
    ]


def likert(judgement_id, reviewer_id, task_id, scores):
    """``scores`` maps response id to {aspect: score}."""
    ids = tuple(sorted(scores))
    return JudgementRecord(judgement_id, task_id, reviewer_id, "likert", scores, ids, ids)


def ranking(judgement_id, reviewer_id, task_id, order):
    ids = tuple(sorted(r for group in order for r in group))
    return JudgementRecord(judgement_id, task_id, reviewer_id, "ranking", {"order": order}, ids, ids)


# --- pairwise agreement ---------------------------------------------------------------------------


def test_it_gives_alpha_one_and_full_agreement_when_every_reviewer_agrees():
    records = (
        votes_on(1, ["a", "a", "a"], strengths=[2, 2, 2])
        + votes_on(2, ["b", "b"])
        + votes_on(3, [None, None, None])
        + votes_on(4, ["b", "b", "b", "b"], strengths=[2, 2, 2, 2])
    )
    result = pairwise_agreement(expand_pairs(records))
    assert result.percent.value == 1.0
    assert result.outcome_alpha.value == pytest.approx(1.0)
    assert result.strength_alpha.value == pytest.approx(1.0)
    assert (result.outcome_alpha.n_items, result.outcome_alpha.n_votes) == (4, 12)
    assert result.outcome_alpha.n_pairs == 3 + 1 + 3 + 6
    assert (result.outcome_alpha.level, result.strength_alpha.level) == ("nominal", "ordinal")


def test_it_matches_a_hand_computed_case():
    # Item 1: a, a; item 2: b, b; item 3: a, b. Coincidences o_aa = o_bb = 2, o_ab = o_ba = 1;
    # n_a = n_b = 3, n = 6. D_o = 2/6, D_e = 2 * 3 * 3 / (6 * 5) = 0.6, so alpha = 1 - (1/3) / 0.6 = 4/9.
    records = votes_on(1, ["a", "a"]) + votes_on(2, ["b", "b"]) + votes_on(3, ["a", "b"])
    result = pairwise_agreement(expand_pairs(records))
    assert result.outcome_alpha.value == pytest.approx(4 / 9)
    assert result.percent.value == pytest.approx(2 / 3)  # (1 + 1 + 0) / 3 items
    # Same strength everywhere, so signed strength is the same split.
    assert result.strength_alpha.value == pytest.approx(4 / 9)


def test_it_matches_krippendorff_on_reliability_data_with_missing_votes():
    # Reviewers (rows) x items (columns) of signed strength; NaN where a reviewer did not vote.
    nan = np.nan
    signed = np.array(
        [
            [2, 1, nan, -1, 0, 2, -2, nan],
            [2, 2, -1, -1, nan, 1, -2, 1],
            [nan, 1, -2, 0, 0, 2, nan, -1],
            [1, nan, -1, -2, 1, nan, -1, 1],
        ]
    )
    records = []
    for reviewer, row in enumerate(signed, start=1):
        for item, value in enumerate(row, start=1):
            if np.isnan(value):
                continue
            winner = None if value == 0 else (10 * item + 1 if value > 0 else 10 * item + 2)
            records.append(
                vote(
                    100 * item + reviewer,
                    reviewer,
                    winner,
                    task_id=item,
                    responses=(10 * item + 1, 10 * item + 2),
                    strength=int(abs(value)),
                )
            )
    result = pairwise_agreement(expand_pairs(records))
    outcome = np.sign(signed)  # NaN stays NaN
    expected_nominal = krippendorff.alpha(reliability_data=outcome, level_of_measurement="nominal")
    expected_ordinal = krippendorff.alpha(reliability_data=signed, level_of_measurement="ordinal")
    assert result.outcome_alpha.value == pytest.approx(expected_nominal, abs=1e-12)
    assert result.strength_alpha.value == pytest.approx(expected_ordinal, abs=1e-12)
    # Measured: nominal 0.613, ordinal 0.741. Strength gives credit for "better" vs "much better".
    assert result.strength_alpha.value > result.outcome_alpha.value
    assert (result.outcome_alpha.n_items, result.outcome_alpha.n_votes) == (8, 25)


def test_it_gives_alpha_near_zero_for_random_reviewers():
    rng = np.random.default_rng(7)
    records = []
    for task in range(1, 401):
        winners = rng.choice(np.array(["a", "b", None], dtype=object), size=3, p=[0.4, 0.4, 0.2])
        records += votes_on(task, list(winners), strengths=list(rng.integers(1, 3, size=3)))
    result = pairwise_agreement(expand_pairs(records))
    # 400 items x 3 votes. Measured (seed 7): nominal -0.011, ordinal -0.014, percent 0.353 (chance on
    # {a, tie, b} at 0.4/0.2/0.4 is 0.36); over seeds 0-9 alpha stayed within -0.057..0.026.
    assert abs(result.outcome_alpha.value) < 0.06
    assert abs(result.strength_alpha.value) < 0.06
    assert result.percent.value == pytest.approx(0.36, abs=0.04)


def test_it_returns_none_for_degenerate_pairs():
    for pairs in (
        empty_pairs(),
        expand_pairs(votes_on(1, ["a"]) + votes_on(2, ["b"])),  # one vote per item
        expand_pairs([vote(j, 5, 2, task_id=j) for j in range(1, 6)]),  # one reviewer
    ):
        result = pairwise_agreement(pairs)
        for statistic in (result.percent, result.outcome_alpha, result.strength_alpha):
            assert statistic.value is None
            assert (statistic.n_items, statistic.n_votes, statistic.n_pairs) == (0, 0, 0)
        assert result.to_frame()["value"].isna().all()


def test_it_leaves_alpha_undefined_for_one_item_or_no_variation():
    one_item = pairwise_agreement(expand_pairs(votes_on(1, ["a", "b"])))
    assert one_item.percent.value == 0.0 and one_item.percent.n_items == 1
    assert one_item.outcome_alpha.value is None and one_item.outcome_alpha.n_items == 1
    # Everyone always picks a: percent agreement is perfect, alpha is 0/0.
    same = pairwise_agreement(expand_pairs(votes_on(1, ["a", "a"]) + votes_on(2, ["a", "a"])))
    assert same.percent.value == 1.0
    assert same.outcome_alpha.value is None and same.outcome_alpha.n_items == 2


# --- likert and ranking ---------------------------------------------------------------------------


def test_it_computes_ordinal_alpha_over_likert_scores():
    scores = {  # reviewer -> task 1's scores
        1: {1: {"helpfulness": 5, "honesty": 4}, 2: {"helpfulness": 2, "honesty": 3}},
        2: {1: {"helpfulness": 4, "honesty": 4}, 2: {"helpfulness": 2, "honesty": 5}},
        3: {1: {"helpfulness": 5}, 2: {"helpfulness": 1, "honesty": 3}},
    }
    records = [likert(r, r, 1, s) for r, s in scores.items()]
    # Units (response, aspect) in columns: (1, help), (1, honesty), (2, help), (2, honesty).
    data = np.array([[5, 4, 2, 3], [4, 4, 2, 5], [5, np.nan, 1, 3]])
    result = likert_agreement(records)
    assert result.value == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal"))
    assert (result.level, result.n_items, result.n_votes) == ("ordinal", 4, 11)
    helpfulness = likert_agreement(records, aspect="helpfulness")
    expected = krippendorff.alpha(reliability_data=data[:, [0, 2]], level_of_measurement="ordinal")
    assert helpfulness.value == pytest.approx(expected)
    assert helpfulness.n_items == 2

    agreeing = [likert(r, r, t, {1: {"helpfulness": t}, 2: {"helpfulness": 5}}) for t in (1, 2) for r in (1, 2)]
    assert likert_agreement(agreeing).value == pytest.approx(1.0)
    assert likert_agreement([]).value is None and likert_agreement([]).n_items == 0


def test_it_gives_kendall_tau_one_for_identical_and_minus_one_for_reversed_rankings():
    same = [ranking(r, r, 1, [[1], [2], [3], [4]]) for r in (1, 2, 3)]
    result = ranking_agreement(same)
    assert result.value == pytest.approx(1.0)
    assert (result.n_items, result.n_votes, result.n_pairs) == (1, 3, 3)

    reversed_ = [ranking(1, 1, 1, [[1], [2], [3], [4]]), ranking(2, 2, 1, [[4], [3], [2], [1]])]
    assert ranking_agreement(reversed_).value == pytest.approx(-1.0)


def test_it_averages_tau_b_over_reviewer_pairs_with_ties():
    # Task 1: identical (tau 1). Task 2: 1 > 2 = 3 against 1 > 2 > 3: tau-b = 2 / sqrt(2 * 3) = 0.8165.
    records = [
        ranking(1, 1, 1, [[1], [2], [3]]),
        ranking(2, 2, 1, [[1], [2], [3]]),
        ranking(3, 1, 2, [[4], [5, 6]]),
        ranking(4, 2, 2, [[4], [5], [6]]),
        ranking(5, 3, 2, [[4, 5, 6]]),  # all tied: no tau with anyone, left out
    ]
    result = ranking_agreement(records)
    assert result.value == pytest.approx((1.0 + 2 / np.sqrt(6)) / 2)
    assert (result.n_items, result.n_votes, result.n_pairs) == (2, 4, 2)


def test_it_returns_none_for_degenerate_rankings():
    for records in ([], [ranking(1, 1, 1, [[1], [2]])], [ranking(1, 1, 1, [[1], [2]]), ranking(2, 1, 1, [[2], [1]])]):
        result = ranking_agreement(records)
        assert result.value is None
        assert (result.n_items, result.n_pairs) == (0, 0)


# --- agreement over time --------------------------------------------------------------------------


def test_it_tracks_agreement_per_day_cumulatively_or_per_day():
    day_one = votes_on(1, ["a", "a"]) + votes_on(2, ["b", "b"])
    day_two = votes_on(3, ["a", "b"]) + votes_on(4, ["b", "a"])
    pairs = expand_pairs(day_one + day_two)
    submitted = {r.judgement_id: "2025-03-01T09:00:00Z" for r in day_one} | {
        r.judgement_id: "2025-03-02T17:30:00Z" for r in day_two
    }
    judgements = pd.DataFrame({"judgement_id": list(submitted), "submitted_at": list(submitted.values())})

    cumulative = agreement_over_time(pairs, judgements=judgements)
    assert cumulative["period"].dt.day.tolist() == [1, 2]
    assert cumulative["outcome_alpha"].iloc[0] == pytest.approx(1.0)
    # Both days: o_aa = o_bb = o_ab = o_ba = 2, n_a = n_b = 4, n = 8: 1 - (4/8) / (2 * 4 * 4 / 56) = 0.125.
    assert cumulative["outcome_alpha"].iloc[1] == pytest.approx(0.125)
    assert cumulative["n_items"].tolist() == [2, 4]
    assert cumulative["percent_agreement"].tolist() == [1.0, 0.5]

    per_day = agreement_over_time(pairs, judgements=judgements, cumulative=False)
    assert per_day["percent_agreement"].tolist() == [1.0, 0.0]
    # Day two alone: o_ab = o_ba = 2, n_a = n_b = 2: 1 - (4/4) / (2 * 2 * 2 / 12) = -0.5.
    assert per_day["outcome_alpha"].iloc[1] == pytest.approx(-0.5)
    assert per_day["n_votes"].tolist() == [4, 4]

    with pytest.raises(ValueError, match="submitted_at"):
        agreement_over_time(pairs, judgements=judgements.iloc[:2])
    assert agreement_over_time(empty_pairs(), judgements=judgements).empty


# --- reviewer table -------------------------------------------------------------------------------

ACCURATE, GUESSER, FAST, LEFT = (1, 2, 3), 4, 5, 6


def simulate(seed, n_tasks=240, n_gold=60, per_task=4):
    """Pairwise tasks, the first ``n_gold`` gold, each judged by 4 of 6 reviewers in a random shown order.

    Reviewers 1-3 pick the better response 90% of the time and take about 30 s; 4 guesses; 5 is as
    good as 1-3 but takes about 3 s; 6 always picks the response shown first (left).
    Returns the records and a judgements frame with ``time_spent_ms``.
    """
    rng = np.random.default_rng(seed)
    reviewers = np.array([*ACCURATE, GUESSER, FAST, LEFT])
    records, times = [], []
    judgement_id = 1
    for task in range(n_tasks):
        ids = (2 * task + 1, 2 * task + 2)
        better = int(rng.integers(2))
        gold = {"preferred": better} if task < n_gold else None
        for reviewer in rng.choice(reviewers, size=per_task, replace=False):
            shown = ids if rng.random() < 0.5 else ids[::-1]
            if reviewer == LEFT:
                winner = shown[0]
            elif reviewer == GUESSER:
                winner = ids[int(rng.integers(2))]
            else:
                winner = ids[better] if rng.random() < 0.9 else ids[1 - better]
            records.append(
                vote(judgement_id, int(reviewer), winner, task_id=task, responses=ids, shown=shown, gold=gold)
            )
            seconds = rng.lognormal(np.log(3.0 if reviewer == FAST else 30.0), 0.3)
            times.append((judgement_id, int(reviewer), int(seconds * 1000)))
            judgement_id += 1
    return records, pd.DataFrame(times, columns=["judgement_id", "reviewer_id", "time_spent_ms"])


def test_it_flags_the_guesser_the_fast_reviewer_and_the_left_clicker():
    records, judgements = simulate(0)
    pairs = expand_pairs(records)
    table = reviewer_table(pairs, consensus=majority(pairs), judgements=judgements, gold_pairs=gold_pairs(records))
    assert tuple(table.columns) == REVIEWER_COLUMNS
    rows = table.set_index("reviewer_id")
    assert rows["flags"].to_dict() == {
        1: [],
        2: [],
        3: [],
        GUESSER: ["low_gold_accuracy"],
        FAST: ["too_fast"],
        # Picking the left response is a coin flip with respect to quality, so gold catches it too.
        LEFT: ["low_gold_accuracy", "position_bias"],
    }
    assert rows["flagged"].tolist() == [False, False, False, True, True, True]
    # Measured (seed 0): gold accuracy 0.88 / 0.98 / 0.90 / 0.50 / 0.85 / 0.62 on 36-47 gold votes;
    # left share 1.0 for reviewer 6, 0.43..0.52 for the others; median ~29.5 s, 3.0 s for reviewer 5;
    # agreement with the majority 0.93..0.95 for 1-3, 0.63 for the guesser.
    assert (rows.loc[list(ACCURATE), "gold_accuracy"] > 0.8).all()
    assert rows.loc[GUESSER, "gold_accuracy"] < 0.6
    assert (rows["gold_answered"] >= 30).all()
    assert rows.loc[LEFT, "left_share"] == 1.0
    assert (rows.drop(LEFT)["left_share"].sub(0.5).abs() < 0.1).all()
    assert rows.loc[FAST, "median_seconds"] == pytest.approx(3.0, rel=0.15)
    assert (rows.drop(FAST)["median_seconds"] > 20).all()
    assert table.attrs["fast_threshold_seconds"] == pytest.approx(0.25 * 30, rel=0.1)
    assert (rows.loc[list(ACCURATE), "agreement_with_consensus"] > rows.loc[GUESSER, "agreement_with_consensus"]).all()
    assert (rows["tie_share"] == 0.0).all()
    assert rows["judgements"].sum() == len(records)
    assert rows["votes"].sum() == len(pairs)


def test_it_uses_an_absolute_speed_limit_and_minimum_counts():
    records, judgements = simulate(1)
    pairs = expand_pairs(records)
    gold = gold_pairs(records)
    # Nobody takes under 1 s per task.
    table = reviewer_table(pairs, consensus=majority(pairs), judgements=judgements, gold_pairs=gold, fast_seconds=1.0)
    assert not table["flags"].map(lambda f: "too_fast" in f).any()
    # With more gold required than anyone answered, no one is judged on gold.
    table = reviewer_table(pairs, consensus=majority(pairs), judgements=judgements, gold_pairs=gold, min_gold=1000)
    assert not table["flags"].map(lambda f: "low_gold_accuracy" in f).any()
    # Without gold, accuracy is NaN with 0 answered.
    table = reviewer_table(pairs, consensus=majority(pairs), judgements=judgements)
    assert table["gold_accuracy"].isna().all() and (table["gold_answered"] == 0).all()


def test_it_excludes_flagged_reviewers_from_the_pairs():
    records, judgements = simulate(0)
    pairs = expand_pairs(records)
    table = reviewer_table(pairs, consensus=majority(pairs), judgements=judgements, gold_pairs=gold_pairs(records))
    kept = exclude_reviewers(pairs, table=table)
    assert set(kept["reviewer_id"]) == set(ACCURATE)
    only_gold = exclude_reviewers(pairs, table=table, flags=["low_gold_accuracy"])
    assert set(only_gold["reviewer_id"]) == {*ACCURATE, FAST}
    with pytest.raises(ValueError, match="unknown flag"):
        exclude_reviewers(pairs, table=table, flags=["sleepy"])
    assert set(FLAGS) == {"low_gold_accuracy", "too_fast", "position_bias"}


def test_it_gives_an_empty_or_nan_table_for_degenerate_input():
    no_judgements = pd.DataFrame({"judgement_id": [], "reviewer_id": [], "time_spent_ms": []}, dtype="int64")
    empty = reviewer_table(empty_pairs(), consensus=majority(empty_pairs()), judgements=no_judgements)
    assert empty.empty and tuple(empty.columns) == REVIEWER_COLUMNS

    # One reviewer, one judgement, no gold: numbers where there is data, NaN elsewhere, no flags.
    pairs = expand_pairs([vote(1, 9, 2, shown=(2, 1))])
    one = reviewer_table(
        pairs,
        consensus=majority(pairs),
        judgements=pd.DataFrame({"judgement_id": [1], "reviewer_id": [9], "time_spent_ms": [1200]}),
    ).iloc[0]
    assert (one["reviewer_id"], one["judgements"], one["votes"], one["gold_answered"]) == (9, 1, 1, 0)
    assert np.isnan(one["gold_accuracy"])
    assert one["agreement_with_consensus"] == 1.0  # the consensus is its own vote
    assert one["median_seconds"] == pytest.approx(1.2)
    assert one["left_share"] == 1.0 and one["position_p_value"] == 1.0
    assert one["flags"] == [] and not one["flagged"]
