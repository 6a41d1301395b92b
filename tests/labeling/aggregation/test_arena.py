"""Models compared: win rates with Wilson intervals, head-to-head records, and the Bradley-Terry leaderboard."""

import choix
import numpy as np
import pandas as pd
import pytest

from labeling.aggregation import (
    ELO_BASE,
    ELO_SCALE,
    HEAD_TO_HEAD_COLUMNS,
    LEADERBOARD_COLUMNS,
    head_to_head,
    leaderboard,
    wilson_interval,
    win_rate,
)


def battles(rows):
    return pd.DataFrame(rows, columns=["model_a", "model_b", "outcome"])


def simulated_battles(strengths, n, *, seed, tie_rate=0.0, both_bad_rate=0.0):
    """Random pairs of models; the winner drawn from the Bradley-Terry model with these log-strengths."""
    rng = np.random.default_rng(seed)
    names = list(strengths)
    rows = []
    for _ in range(n):
        i, j = rng.choice(len(names), size=2, replace=False)
        a, b = names[i], names[j]
        draw = rng.random()
        if draw < both_bad_rate:
            outcome = "both_bad"
        elif draw < both_bad_rate + tie_rate:
            outcome = "tie"
        else:
            p_a = 1 / (1 + np.exp(strengths[b] - strengths[a]))
            outcome = "a" if rng.random() < p_a else "b"
        rows.append((a, b, outcome))
    return battles(rows)


# --- win rate ----------------------------------------------------------------------------------------


def test_it_gives_the_textbook_wilson_interval():
    # Wilson (1927) for 7 of 10 at 95%: 0.3968 to 0.8922; for 0 of 10 it still has width.
    assert wilson_interval(0.7, 10) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    low, high = wilson_interval(0.0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    with pytest.raises(ValueError, match="n must be positive"):
        wilson_interval(0.5, 0)


def test_it_counts_ties_half_and_both_bad_apart_from_either_side():
    table = battles(
        [
            ("new", "old", "a"),
            ("old", "new", "b"),
            ("new", "old", "b"),
            ("new", "old", "tie"),
            ("old", "new", "both_bad"),
        ]
    )
    rate = win_rate(table, model="new", opponent="old")
    assert (rate.wins, rate.losses, rate.ties, rate.both_bad) == (2, 1, 1, 1)
    assert (rate.n, rate.n_judgements) == (4, 5)
    assert rate.win_rate == pytest.approx(2.5 / 4)
    assert (rate.low, rate.high) == pytest.approx(wilson_interval(2.5 / 4, 4))
    other_way = win_rate(table, model="old", opponent="new")
    assert other_way.win_rate == pytest.approx(1 - rate.win_rate)
    assert other_way.both_bad == 1


def test_it_has_no_rate_before_the_first_verdict():
    rate = win_rate(battles([("new", "old", "both_bad")]), model="new", opponent="old")
    assert rate.n == 0 and rate.n_judgements == 1
    assert rate.win_rate is None and rate.low is None and rate.high is None


def test_its_interval_holds_a_70_percent_preference_for_b():
    # Reviewers prefer model B's answer 70% of the time (5% ties, 5% both bad) over 400 judgements.
    rng = np.random.default_rng(7)
    draws = rng.random(400)
    outcome = np.where(
        draws < 0.05, "both_bad", np.where(draws < 0.10, "tie", np.where(draws < 0.10 + 0.9 * 0.7, "b", "a"))
    )
    rate = win_rate(battles([("A", "B", o) for o in outcome]), model="B", opponent="A")
    assert rate.low < 0.7 < rate.high
    assert rate.low > 0.5  # and it is clearly better than a coin
    assert rate.high - rate.low < 0.1


def test_its_interval_covers_the_truth_about_95_percent_of_the_time_with_ties():
    # Per battle: win 0.55, tie 0.2, loss 0.25, so the true rate is 0.55 + 0.1 = 0.65.
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(400):
        draws = rng.random(120)
        outcome = np.where(draws < 0.55, "a", np.where(draws < 0.75, "tie", "b"))
        rate = win_rate(battles([("x", "y", o) for o in outcome]), model="x", opponent="y")
        covered += rate.low <= 0.65 <= rate.high
    # Ties make Wilson conservative: at least the nominal 95%, and not absurdly wide either.
    assert 0.94 <= covered / 400 <= 0.995


def test_it_refuses_bad_battles():
    with pytest.raises(ValueError, match="missing outcome"):
        win_rate(pd.DataFrame({"model_a": ["x"], "model_b": ["y"]}), model="x", opponent="y")
    with pytest.raises(ValueError, match="unknown outcome"):
        win_rate(battles([("x", "y", "draw")]), model="x", opponent="y")
    with pytest.raises(ValueError, match="two different models"):
        win_rate(battles([("x", "x", "a")]), model="x", opponent="y")
    with pytest.raises(ValueError, match="two different models"):
        win_rate(battles([("x", "y", "a")]), model="x", opponent="x")


# --- head to head ------------------------------------------------------------------------------------


def test_the_matrix_is_complementary_and_shows_pairs_that_never_met():
    table = battles([("p", "q", "a"), ("p", "q", "a"), ("q", "p", "tie"), ("q", "r", "b"), ("p", "q", "both_bad")])
    matrix = head_to_head(table, models=["p", "q", "r"])
    assert list(matrix.columns) == list(HEAD_TO_HEAD_COLUMNS)
    cell = matrix.set_index(["model", "opponent"])
    assert len(matrix) == 6
    assert cell.loc[("p", "q"), "win_rate"] == pytest.approx(2.5 / 3)
    assert cell.loc[("q", "p"), "win_rate"] == pytest.approx(0.5 / 3)
    assert cell.loc[("p", "q"), "both_bad"] == 1 and cell.loc[("p", "q"), "n"] == 3
    assert cell.loc[("r", "q"), "win_rate"] == 1.0
    assert cell.loc[("p", "r"), "n"] == 0 and np.isnan(cell.loc[("p", "r"), "win_rate"])


# --- leaderboard -------------------------------------------------------------------------------------


def test_it_matches_choix_on_the_same_battles():
    strengths = {"alpha": 0.0, "beta": 0.4, "gamma": 1.0, "delta": -0.5}
    table = simulated_battles(strengths, 300, seed=3)
    names = sorted(strengths)
    won = [
        (names.index(a), names.index(b)) if outcome == "a" else (names.index(b), names.index(a))
        for a, b, outcome in table.itertuples(index=False)
    ]
    l2 = 0.1
    expected = choix.opt_pairwise(len(names), won, alpha=l2 / 2, tol=1e-10)
    board = leaderboard(table, l2=l2, n_bootstrap=0).set_index("model")
    fitted = board.loc[names, "strength"].to_numpy()
    np.testing.assert_allclose(fitted - fitted.mean(), expected - expected.mean(), atol=1e-5)
    np.testing.assert_allclose(board.loc[names, "rating"], ELO_BASE + ELO_SCALE * fitted)


def test_it_matches_choix_with_ties_as_half_a_win():
    # Doubling the battles turns each tie into one win each way for choix (and doubles the penalty).
    table = simulated_battles({"x": 0.0, "y": 0.7, "z": -0.3}, 120, seed=5, tie_rate=0.25)
    names = ["x", "y", "z"]
    doubled = []
    for a, b, outcome in table.itertuples(index=False):
        i, j = names.index(a), names.index(b)
        doubled += {"a": [(i, j), (i, j)], "b": [(j, i), (j, i)], "tie": [(i, j), (j, i)]}[outcome]
    expected = choix.opt_pairwise(3, doubled, alpha=0.1, tol=1e-10)
    fitted = leaderboard(table, l2=0.1, n_bootstrap=0).set_index("model").loc[names, "strength"].to_numpy()
    np.testing.assert_allclose(fitted, expected - expected.mean(), atol=1e-5)


def test_it_orders_three_simulated_models_with_intervals_around_the_truth():
    truth = {"small": -0.6, "medium": 0.0, "large": 0.6}
    table = simulated_battles(truth, 900, seed=12, tie_rate=0.1, both_bad_rate=0.05)
    board = leaderboard(table, n_bootstrap=500, seed=1)
    assert list(board.columns) == list(LEADERBOARD_COLUMNS)
    assert board["model"].tolist() == ["large", "medium", "small"]
    assert board["rank"].tolist() == [1, 2, 3]  # the intervals do not overlap
    assert (board["rating_low"] < board["rating"]).all() and (board["rating"] < board["rating_high"]).all()
    # Each true rating (centred like the fit) lies in its interval.
    true_rating = {name: ELO_BASE + ELO_SCALE * strength for name, strength in truth.items()}
    for row in board.itertuples():
        assert row.rating_low < true_rating[row.model] < row.rating_high
    assert board["rating"].mean() == pytest.approx(ELO_BASE, abs=1e-6)
    # Every battle counts once per model in it; both-bad ones too.
    assert board["n_battles"].sum() == 2 * len(table)
    assert board["both_bad"].sum() == 2 * (table["outcome"] == "both_bad").sum()


def test_models_whose_intervals_overlap_share_a_rank_and_the_seed_fixes_the_table():
    table = simulated_battles({"twin-1": 0.0, "twin-2": 0.02, "far": -2.0}, 300, seed=8)
    board = leaderboard(table, seed=4)
    ranks = board.set_index("model")["rank"]
    assert ranks["twin-1"] == ranks["twin-2"] == 1
    assert ranks["far"] == 3
    pd.testing.assert_frame_equal(board, leaderboard(table, seed=4))


def test_it_marks_models_never_compared_with_the_others():
    table = battles(
        [("a1", "a2", "a"), ("a2", "a3", "a"), ("a1", "a3", "tie"), ("b1", "b2", "b"), ("c", "d", "both_bad")]
    )
    board = leaderboard(table, n_bootstrap=50)
    # Group by group, the largest first; best first within each.
    assert board["model"].tolist() == ["a1", "a2", "a3", "b2", "b1", "c", "d"]
    assert board["rank"].tolist()[:5] == [1, 1, 1, 1, 1]  # five battles say little
    board = board.set_index("model")
    assert board.loc[["a1", "a2", "a3"], "group"].tolist() == [0, 0, 0]
    assert board.loc["b1", "group"] == board.loc["b2", "group"] != 0
    # Only both-bad verdicts: no rating, ranked last, battles still counted.
    assert np.isnan(board.loc["c", "rating"]) and board.loc["c", "rank"] == len(board)
    assert board.loc["c", "n_battles"] == 1 and board.loc["c", "both_bad"] == 1


def test_a_model_that_won_every_battle_stays_finite():
    board = leaderboard(battles([("champ", "chump", "a")] * 5), n_bootstrap=100)
    assert board["model"].tolist() == ["champ", "chump"]
    assert np.isfinite(board[["rating", "rating_low", "rating_high"]].to_numpy()).all()


def test_no_battles_give_an_empty_board():
    empty = battles([])
    assert leaderboard(empty).empty and list(leaderboard(empty).columns) == list(LEADERBOARD_COLUMNS)
    assert head_to_head(empty).empty


def test_it_is_fast_enough_for_a_page():
    import time

    table = simulated_battles({f"m{i}": i / 10 for i in range(12)}, 5000, seed=2, tie_rate=0.1)
    started = time.perf_counter()
    leaderboard(table, n_bootstrap=1000)
    assert time.perf_counter() - started < 5.0
