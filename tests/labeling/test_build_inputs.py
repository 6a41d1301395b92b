"""What a dataset build reads: pairwise answers taken apart by the database equal the per-row reading.

These run on both databases (CI has a PostgreSQL pass and a SQLite pass): on PostgreSQL the columns
come through COPY, on SQLite through the ORM's rows.
"""

import itertools

import numpy as np
import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.db.models import BigIntegerField, BooleanField
from django.utils import timezone

from labeling import selectors
from labeling.models import Assignment, AssignmentState, Judgement, Task
from rlhf_platform.frames import JSONValue, queryset_frame
from rlhf_platform.roles import Role
from tests.labeling.factories import make_campaign, pairwise_rows

SCHEMA = {
    "questions": [
        {"id": "preference", "type": "pairwise", "allow_both_bad": True},
        {"id": "flags", "type": "flags"},
        {"id": "better", "type": "rewrite", "required": False},
    ]
}
_submission = itertools.count()


def judge(task, reviewer, answers, *, shown=None, retracted=False):
    """A stored judgement as the submit path leaves it (written directly, to cover odd shapes too)."""
    shown = list(task.responses.values_list("pk", flat=True)) if shown is None else shown
    now = timezone.now()
    assignment = Assignment.objects.create(
        task=task, reviewer=reviewer, state=AssignmentState.SUBMITTED, shown_order=shown,
        assigned_at=now, lease_expires_at=now, finished_at=now,
    )  # fmt: skip
    return Judgement.objects.create(
        assignment=assignment, task=task, reviewer=reviewer, answers=answers, shown_order=shown,
        time_spent_ms=900, client_submission_id=f"s{next(_submission)}", submitted_at=now,
        retracted_at=now if retracted else None,
    )  # fmt: skip


@pytest.fixture
def campaign(manager, make_user):
    reviewers = [make_user(f"r{i}", role=Role.REVIEWER) for i in range(4)]
    campaign = make_campaign(manager=manager, reviewers=reviewers, schema=SCHEMA, tasks=pairwise_rows(4, gold_every=3))
    t0, t1, t2, t3 = Task.objects.filter(campaign=campaign).order_by("pk")
    left, right = (list(t.responses.values_list("pk", flat=True)) for t in (t0, t1))
    r0, r1, r2, r3 = reviewers
    judge(t0, r0, {"preference": {"winner": left[0], "strength": 2, "both_bad": False}})
    judge(t0, r1, {"preference": {"winner": left[1], "strength": 1, "both_bad": True}}, shown=left[::-1])
    judge(t0, r2, {"preference": {"winner": None, "strength": 0}})  # a tie
    judge(t0, r3, {"preference": {"winner": left[0], "strength": 3}}, retracted=True)  # undone: left out
    judge(t1, r0, {"preference": {"winner": right[1]}})  # no strength: counts as 1
    judge(t1, r1, {"flags": {str(right[0]): ["unsafe"]}})  # the comparison left blank
    judge(t1, r2, {"preference": None, "better": {"text": "A clearer answer."}})
    judge(t1, r3, {"preference": {"winner": right[0], "strength": 2}}, shown=[])  # no shown order kept
    b0, b1 = t3.responses.values_list("pk", flat=True)  # task 3 is gold (every third row)
    judge(t3, r0, {"preference": {"winner": b0, "strength": 1}, "flags": {str(b1): []}})
    reversed_order = list(t2.responses.values_list("pk", flat=True))[::-1]
    judge(t2, r0, {"preference": {"winner": None, "strength": 0, "both_bad": True}}, shown=reversed_order)
    return campaign


def by_judgement(table):
    order = np.argsort(table.column("judgement_id"))
    return {name: table.column(name)[order].tolist() for name in ("judgement_id", "task_id", "reviewer_id", "is_gold")}


def test_columns_from_the_database_give_what_the_per_row_reading_gives(campaign):
    in_columns = selectors.load_build_inputs([campaign])
    row_by_row = selectors.load_build_inputs([campaign], keep_records=True)  # answers decoded one by one

    assert len(in_columns.judgements) == len(row_by_row.judgements) == 7  # retracted and blank ones left out
    assert by_judgement(in_columns.judgements) == by_judgement(row_by_row.judgements)
    pd.testing.assert_frame_equal(in_columns.judgements.expand(), row_by_row.judgements.expand())
    pairs = in_columns.judgements.expand()
    assert sorted(pairs["strength"].tolist()) == [0, 0, 1, 1, 1, 2, 2]
    assert pairs["both_bad"].sum() == 2
    assert pairs["left_first"].isna().sum() == 3  # two ties and the judgement without a shown order
    assert in_columns.flagged_responses == row_by_row.flagged_responses and len(in_columns.flagged_responses) == 1
    assert [text for *_, text in in_columns.rewrites] == ["A clearer answer."]


def test_a_winner_that_was_not_shown_is_refused_naming_the_judgement(campaign):
    task = Task.objects.filter(campaign=campaign).order_by("pk").first()
    reviewer = get_user_model().objects.create_user("stray")
    stray = judge(task, reviewer, {"preference": {"winner": 10**9, "strength": 1}})
    with pytest.raises(ValueError, match=rf"judgement {stray.pk}: winner 1000000000 is not one of"):
        selectors.load_build_inputs([campaign])


def test_a_queryset_frame_keeps_nulls_and_booleans_and_has_columns_when_empty(campaign):
    judgements = (
        Judgement.objects.filter(task__campaign=campaign)
        .order_by("pk")
        .annotate(
            both_bad=JSONValue("answers", "preference", "both_bad", output_field=BooleanField()),
            winner=JSONValue("answers", "preference", "winner", output_field=BigIntegerField()),
        )
    )
    frame = queryset_frame(judgements, {"pk": "int64", "both_bad": "boolean", "winner": "int64"})
    assert list(frame.columns) == ["pk", "both_bad", "winner"]
    assert frame["both_bad"].tolist()[:3] == [False, True, pd.NA]
    assert frame["winner"].isna().tolist()[:3] == [False, False, True]  # the tie's null winner stays null
    assert str(frame["pk"].dtype) == str(frame["winner"].dtype) == "Int64"
    assert frame["pk"].tolist() == sorted(frame["pk"].tolist())  # in the queryset's order

    empty = queryset_frame(judgements.none(), {"pk": "int64", "both_bad": "boolean"})
    assert empty.empty and list(empty.columns) == ["pk", "both_bad"] and str(empty["pk"].dtype) == "Int64"
    with pytest.raises(ValueError, match="unknown column types"):
        queryset_frame(judgements, {"pk": "text"})
