"""What the new stages train on, made from snapshot rows: KTO's labelled completions, RLOO's and GRPO's prompts."""

from __future__ import annotations

import pytest

from training.stage_data import StageDataError, check_snapshot_kind, stage_rows


def test_kto_takes_a_kto_snapshot_rows_as_they_are():
    rows = [
        {"prompt": "p", "completion": "good", "label": True, "group_id": "g1", "split": "train"},
        {"prompt": "p", "completion": "bad", "label": False, "group_id": "g1", "split": "test"},
    ]
    assert list(stage_rows(stage="kto", kind="kto", rows=rows)) == [
        {"prompt": "p", "completion": "good", "label": True, "group_id": "g1", "split": "train"},
        {"prompt": "p", "completion": "bad", "label": False, "group_id": "g1", "split": "test"},
    ]


def test_kto_splits_each_preference_pair_into_a_desirable_and_an_undesirable_completion():
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b", "margin": 1.0, "group_id": "g", "split": "train"}]
    assert list(stage_rows(stage="kto", kind="preference", rows=rows)) == [
        {"prompt": "p", "completion": "a", "label": True, "group_id": "g", "split": "train"},
        {"prompt": "p", "completion": "b", "label": False, "group_id": "g", "split": "train"},
    ]


def test_kto_refuses_an_sft_snapshot_by_name():
    with pytest.raises(StageDataError, match="'demos' is a sft snapshot, whose completions are all desirable"):
        check_snapshot_kind(stage="kto", kind="sft", dataset_name="demos")


@pytest.mark.parametrize("stage", ["rloo", "grpo"])
def test_online_rl_trains_on_the_distinct_prompts(stage):
    rows = [
        {"prompt": "p", "chosen": "a", "rejected": "b", "group_id": "g", "split": "train"},
        {"prompt": "p", "chosen": "c", "rejected": "d", "group_id": "g", "split": "train"},
        {"prompt": "q", "chosen": "a", "rejected": "b", "group_id": "h", "split": "test"},
    ]
    assert [row["prompt"] for row in stage_rows(stage=stage, kind="preference", rows=rows)] == ["p", "q"]
