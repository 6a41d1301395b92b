"""Expanding judgements into pairwise votes."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from labeling.aggregation import PAIR_COLUMNS, JudgementRecord, JudgementTable, expand_pairs, gold_pairs
from tests.conftest import REPO_ROOT


def record(judgement_id, question_type, answer, shown_order, *, task_id=1, reviewer_id=7, **extra):
    return JudgementRecord(
        judgement_id=judgement_id,
        task_id=task_id,
        reviewer_id=reviewer_id,
        question_type=question_type,
        answer=answer,
        response_ids=tuple(sorted(shown_order)),
        shown_order=tuple(shown_order),
        **extra,
    )


def rows(pairs):
    return {(r.a, r.b): r for r in pairs.itertuples(index=False)}


def test_it_expands_a_pairwise_answer_with_strength_and_both_bad():
    pairs = expand_pairs(
        [
            record(1, "pairwise", {"winner": 20, "strength": 2, "both_bad": False}, [20, 10]),
            record(2, "pairwise", {"winner": 20, "strength": 1, "both_bad": True}, [10, 20], reviewer_id=8),
        ]
    )
    assert tuple(pairs.columns) == PAIR_COLUMNS
    assert pairs[["a", "b"]].values.tolist() == [[10, 20], [10, 20]]
    assert pairs["outcome"].tolist() == [0.0, 0.0]
    assert pairs["strength"].tolist() == [2, 1]
    assert pairs["both_bad"].tolist() == [False, True]
    # Shown [20, 10]: the winner 20 was on the left; shown [10, 20]: it was on the right.
    assert pairs["left_first"].tolist() == [True, False]


def test_it_expands_a_pairwise_tie_with_zero_strength_and_no_side():
    pairs = expand_pairs([record(1, "pairwise", {"winner": None, "strength": 0, "both_bad": True}, [10, 20])])
    assert len(pairs) == 1
    tie = pairs.iloc[0]
    assert (tie["outcome"], tie["strength"], tie["both_bad"]) == (0.5, 0, True)
    assert pd.isna(tie["left_first"])


def test_it_expands_a_ranking_into_every_pair_with_ties_inside_groups():
    # 3 best; 1 and 4 tied second; 2 last.
    pairs = expand_pairs([record(1, "ranking", {"order": [[3], [1, 4], [2]]}, [4, 3, 2, 1])])
    assert len(pairs) == 6  # C(4, 2)
    got = rows(pairs)
    assert set(got) == {(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)}
    assert {key: row.outcome for key, row in got.items()} == {
        (1, 2): 1.0,
        (1, 3): 0.0,
        (1, 4): 0.5,
        (2, 3): 0.0,
        (2, 4): 0.0,
        (3, 4): 1.0,
    }
    # Strength is the distance between groups.
    assert got[(2, 3)].strength == 2
    assert got[(1, 3)].strength == 1
    assert got[(1, 4)].strength == 0
    # Shown order 4, 3, 2, 1: for (3, 4) the preferred 3 was right of 4; for (2, 3) 3 was left of 2.
    assert bool(got[(3, 4)].left_first) is False
    assert bool(got[(2, 3)].left_first) is True
    assert pd.isna(got[(1, 4)].left_first)


def test_it_caps_the_rank_distance():
    pairs = expand_pairs([record(1, "ranking", {"order": [[1], [2], [3], [4], [5]]}, [1, 2, 3, 4, 5])], max_strength=2)
    assert rows(pairs)[(1, 5)].strength == 2
    assert rows(pairs)[(1, 2)].strength == 1
    assert len(pairs) == 10


def test_it_turns_likert_differences_into_preferences_above_a_threshold():
    answer = {"1": {"help": 5, "honest": 5}, "2": {"help": 4, "honest": 5}, "3": {"help": 2, "honest": 1}}
    pairs = expand_pairs([record(1, "likert", answer, [3, 2, 1])])
    got = rows(pairs)
    # Mean over aspects: 5, 4.5, 1.5.
    assert got[(1, 2)].outcome == 0.5 and got[(1, 2)].strength == 0
    assert got[(1, 3)].outcome == 1.0 and got[(1, 3)].strength == 3
    assert got[(2, 3)].outcome == 1.0 and got[(2, 3)].strength == 3
    assert bool(got[(1, 3)].left_first) is False

    by_help = rows(expand_pairs([record(1, "likert", answer, [3, 2, 1])], likert_aspect="help"))
    assert by_help[(1, 2)].outcome == 1.0 and by_help[(1, 2)].strength == 1

    dropped = expand_pairs([record(1, "likert", answer, [3, 2, 1])], likert_ties=False)
    assert set(rows(dropped)) == {(1, 3), (2, 3)}

    coarse = rows(expand_pairs([record(1, "likert", answer, [3, 2, 1])], likert_threshold=2.0))
    assert coarse[(1, 3)].strength == 1  # floor(3.5 / 2)


def test_it_returns_an_empty_frame_with_the_columns_for_no_records():
    pairs = expand_pairs([])
    assert pairs.empty
    assert tuple(pairs.columns) == PAIR_COLUMNS
    # Optional questions left blank are skipped, not errors.
    assert expand_pairs([record(1, "pairwise", None, [1, 2])]).empty


def test_it_rejects_answers_that_are_not_comparisons():
    with pytest.raises(ValueError, match="not comparisons"):
        expand_pairs([record(1, "text", "fine", [1, 2])])
    with pytest.raises(ValueError, match="not one of"):
        expand_pairs([record(1, "pairwise", {"winner": 99, "strength": 1}, [1, 2])])


def test_it_turns_gold_positions_into_pairs():
    ranking = JudgementRecord(
        1, 5, 7, "ranking", {"order": [[30], [10], [20]]}, (10, 20, 30), (10, 20, 30), True, {"ranking": [2, 0, 1]}
    )
    preferred = JudgementRecord(
        2, 6, 7, "ranking", {"order": [[40], [50], [60]]}, (40, 50, 60), (40, 50, 60), True, {"preferred": 1}
    )
    not_gold = JudgementRecord(3, 8, 7, "pairwise", {"winner": 1, "strength": 1}, (1, 2), (1, 2))
    gold = gold_pairs([ranking, ranking, preferred, not_gold])
    assert gold.values.tolist() == [
        [5, 10, 20, 1.0],
        [5, 10, 30, 0.0],
        [5, 20, 30, 0.0],
        [6, 40, 50, 0.0],
        [6, 50, 60, 1.0],
    ]


def test_it_imports_no_django():
    code = "import sys, labeling.aggregation; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_judgement_table_expands_the_kept_records_like_expand_pairs_of_those_records():
    records = [
        record(1, "pairwise", {"winner": 20, "strength": 2, "both_bad": False}, [20, 10]),
        record(2, "ranking", {"order": [[3], [1, 4], [2]]}, [4, 3, 2, 1], task_id=2, reviewer_id=8),
        record(3, "likert", {"10": {"help": 5}, "20": {"help": 2}}, [10, 20], task_id=3, is_gold=True),
        record(4, "ranking", {"order": [[6], [5]]}, [5, 6], task_id=4, reviewer_id=9),
        record(5, "pairwise", None, [10, 20]),  # a blank optional question adds nothing
    ]
    table = JudgementTable.from_records(records)
    assert len(table) == 4
    assert table.column("reviewer_id").tolist() == [7, 8, 7, 9]
    assert table.column("is_gold").tolist() == [False, False, True, False]
    pd.testing.assert_frame_equal(table.expand(), expand_pairs(records))

    keep = table.column("reviewer_id") != 8
    pd.testing.assert_frame_equal(table.expand(keep=keep), expand_pairs([r for r in records if r.reviewer_id != 8]))
    assert table.expand(keep=np.zeros(len(table), dtype=bool)).empty


def test_expanded_pairs_come_sorted_by_task_pair_and_judgement():
    records = [
        record(9, "pairwise", {"winner": 2, "strength": 1}, [2, 1], task_id=5),
        record(3, "ranking", {"order": [[30], [10], [20]]}, [10, 20, 30], task_id=4),
        record(4, "pairwise", {"winner": 1, "strength": 1}, [1, 2], task_id=5),
    ]
    pairs = expand_pairs(records)
    keys = list(zip(pairs["task_id"], pairs["a"], pairs["b"], pairs["judgement_id"], strict=True))
    assert keys == [(4, 10, 20, 3), (4, 10, 30, 3), (4, 20, 30, 3), (5, 1, 2, 4), (5, 1, 2, 9)]


def test_pairwise_columns_add_what_records_add():
    records = [
        record(1, "pairwise", {"winner": 20, "strength": 2, "both_bad": True}, [20, 10]),
        record(2, "pairwise", {"winner": None, "strength": 0}, [10, 20], reviewer_id=8),
        record(3, "pairwise", {"winner": 6}, [5, 6], task_id=4, is_gold=True),  # strength left out: 1
    ]
    table = JudgementTable()
    table.extend_pairwise(
        judgement_id=np.array([1, 2, 3]),
        task_id=np.array([1, 1, 4]),
        reviewer_id=np.array([7, 8, 7]),
        shown=np.array([[20, 10], [10, 20], [5, 6]]),
        winner=np.array([20, -1, 6]),  # negative: a tie
        strength=np.array([2, 0, 0]),
        both_bad=np.array([True, False, False]),
        is_gold=np.array([False, False, True]),
    )
    pd.testing.assert_frame_equal(table.expand(), expand_pairs(records))
    assert table.column("is_gold").tolist() == [False, False, True]
    with pytest.raises(ValueError, match="judgement 9: winner 30 is not one of 10, 20"):
        table.extend_pairwise(
            judgement_id=np.array([9]), task_id=np.array([1]), reviewer_id=np.array([7]), shown=np.array([[10, 20]]),
            winner=np.array([30]), strength=np.array([1]), both_bad=np.array([False]), is_gold=np.array([False]),
        )  # fmt: skip
    assert len(table) == 3  # nothing of a refused batch is kept
