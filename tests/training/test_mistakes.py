"""A model's mistakes, sliced: the pure functions over synthetic outcomes."""

from __future__ import annotations

import pytest

from training.mistakes import (
    MAX_VALUES_PER_META_KEY,
    error_slices,
    misses,
    outcome_table,
    prompt_chars,
    slice_rows,
)

TASKS = {
    str(task_id): {"campaign_id": 1 if task_id < 50 else 2, "campaign": "Round A" if task_id < 50 else "Round B",
                   "meta": {"topic": "code" if task_id % 4 == 0 else "chat", "lang": "en"}}
    for task_id in range(100)
}  # fmt: skip


def pair(task_id: int, *, correct: float, margin: float = 1.0, agreement: float | None = 1.0, prompt: str = "P"):
    return {"kind": "pair", "item": task_id, "task_id": str(task_id), "group_id": f"g{task_id}",
            "agreement": agreement, "n_votes": 2, "prompt": prompt, "chosen": "c", "rejected": "r",
            "margin": margin, "correct": correct}  # fmt: skip


def by_name(report) -> dict[tuple[str, str, str], object]:
    return {(item.dimension, item.key, item.value): item for item in report.slices}


def test_the_one_meta_value_the_model_gets_wrong_is_worst_and_flagged():
    # Wrong on every "code" task (a quarter of them), right on every other.
    outcomes = [pair(t, correct=0.0 if TASKS[str(t)]["meta"]["topic"] == "code" else 1.0) for t in range(100)]
    report = error_slices(outcome_table(outcomes, TASKS))
    assert report.count == 100 and report.score == pytest.approx(0.75)
    worst = report.slices[0]
    assert (worst.dimension, worst.key, worst.value, worst.count, worst.score) == ("meta", "topic", "code", 25, 0.0)
    assert worst.much_worse and worst.interval[1] < 0.75
    assert [item for item in report.slices if item.much_worse] == [worst]
    slices = by_name(report)
    assert slices[("meta", "topic", "chat")].score == 1.0 and not slices[("meta", "topic", "chat")].much_worse
    # Slices of the other dimensions that hold everything, or half of everything, are no worse than the whole.
    assert slices[("meta", "lang", "en")].count == 100
    assert slices[("campaign", "", "1")].label == "Round A" and slices[("campaign", "", "1")].count == 50
    assert slices[("agreement", "", "1.00")].label == "100.0%"
    assert slices[("prompt_length", "", "0-199")].count == 100


def test_a_small_bad_slice_is_shown_but_not_flagged():
    # Three wrong pairs at agreement 0.5: accuracy 0, but too few to call it much worse.
    outcomes = [pair(t, correct=1.0) for t in range(40)] + [pair(t, correct=0.0, agreement=0.5) for t in range(40, 43)]
    report = error_slices(outcome_table(outcomes, TASKS))
    low = by_name(report)[("agreement", "", "0.50")]
    assert low.count == 3 and low.score == 0.0 and not low.much_worse
    assert report.slices[0] == low  # still worst first


def test_a_slice_within_noise_of_the_whole_is_not_flagged():
    # 60% on one campaign, 70% on the other: their intervals overlap the overall 65%.
    outcomes = [pair(t, correct=1.0 if t % 10 < 6 else 0.0) for t in range(50)]
    outcomes += [pair(t, correct=1.0 if t % 10 < 7 else 0.0) for t in range(50, 100)]
    report = error_slices(outcome_table(outcomes, TASKS))
    assert not any(item.much_worse for item in report.slices)
    assert report.slices[0].score == pytest.approx(0.6)


def test_ties_count_half_and_the_interval_holds_the_score():
    outcomes = [pair(t, correct=0.5, margin=0.0) for t in range(20)]
    report = error_slices(outcome_table(outcomes, TASKS))
    assert report.score == 0.5 and report.interval[0] < 0.5 < report.interval[1]


def test_meta_values_that_are_missing_or_not_text_get_their_own_slices():
    tasks = {"1": {"campaign_id": 1, "campaign": "A", "meta": {"level": 3}},
             "2": {"campaign_id": 1, "campaign": "A", "meta": {"level": [1, 2]}},
             "3": {"campaign_id": 1, "campaign": "A", "meta": {}}}  # fmt: skip
    outcomes = [pair(1, correct=1.0), pair(2, correct=0.0), pair(3, correct=1.0), pair(4, correct=0.0)]
    slices = by_name(error_slices(outcome_table(outcomes, tasks)))
    assert {value for dimension, key, value in slices if key == "level"} == {"3", "[1, 2]", "(not set)"}
    assert slices[("meta", "level", "(not set)")].count == 2  # task 3, and task 4 that no longer exists
    assert slices[("campaign", "", "")].label == "(task no longer exists)"


def test_a_meta_key_with_a_value_per_task_is_left_out():
    tasks = {str(t): {"campaign_id": 1, "campaign": "A", "meta": {"uid": f"u{t}", "topic": "x"}} for t in range(40)}
    report = error_slices(outcome_table([pair(t, correct=1.0) for t in range(40)], tasks))
    assert report.meta_keys_left_out == {"uid": 40} and MAX_VALUES_PER_META_KEY < 40
    assert {item.key for item in report.slices if item.dimension == "meta"} == {"topic"}


def test_prompt_length_is_counted_in_characters_of_every_message():
    assert prompt_chars("abc") == 3
    assert prompt_chars([{"role": "system", "content": "ab"}, {"role": "user", "content": "cde"}]) == 5
    outcomes = [pair(1, correct=1.0, prompt="x" * 199), pair(2, correct=1.0, prompt="x" * 200),
                pair(3, correct=0.0, prompt="x" * 2500)]  # fmt: skip
    slices = by_name(error_slices(outcome_table(outcomes, TASKS)))
    assert slices[("prompt_length", "", "0-199")].count == 1
    assert slices[("prompt_length", "", "200-499")].label == "200 to 499 characters"
    assert slices[("prompt_length", "", "200-499")].count == 1
    assert slices[("prompt_length", "", "2000+")].score == 0.0


def test_a_slices_misses_come_most_confidently_wrong_first():
    outcomes = [pair(0, correct=0.0, margin=-0.2), pair(4, correct=0.0, margin=-3.0), pair(8, correct=0.5, margin=0.0),
                pair(12, correct=1.0, margin=2.0), pair(1, correct=0.0, margin=-9.0)]  # fmt: skip
    table = outcome_table(outcomes, TASKS)
    rows = slice_rows(table, dimension="meta", key="topic", value="code")
    assert list(rows["item"]) == [0, 4, 8, 12]
    assert [row["item"] for row in misses(rows)] == [4, 0, 8]
    assert slice_rows(table, dimension="meta", key="nope", value="code").empty
    assert slice_rows(table, dimension="bogus", value="x").empty


def test_a_policys_prompts_are_scored_by_who_won_and_its_losses_listed_by_the_rewards_gap():
    def prompt(task_id, winner, new_reward, base_reward):
        return {"kind": "prompt", "item": task_id, "task_id": str(task_id), "group_id": f"g{task_id}", "prompt": "P",
                "new": "n", "base": "b", "new_reward": new_reward, "base_reward": base_reward, "winner": winner}  # fmt: skip

    outcomes = [prompt(1, "new", 2.0, 1.0), prompt(2, "base", 0.0, 0.5), prompt(3, "base", 0.0, 3.0),
                prompt(5, "tie", 1.0, 1.0)]  # fmt: skip
    table = outcome_table(outcomes, TASKS)
    report = error_slices(table)
    assert report.score == pytest.approx(1.5 / 4)
    assert "agreement" not in {item.dimension for item in report.slices}
    assert [row["item"] for row in misses(table)] == [3, 2, 5]


def test_no_outcomes_make_an_empty_report():
    report = error_slices(outcome_table([], TASKS))
    assert report.count == 0 and report.slices == []
