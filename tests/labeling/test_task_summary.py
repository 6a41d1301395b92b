"""The per-task summary the task browser filters on: agreement, flags and skips, kept by the services."""

from __future__ import annotations

import uuid

import pytest

from labeling.models import Task
from labeling.services.assignment import assignment_skip
from labeling.services.judgements import judgement_submit, judgement_undo_last
from rlhf_platform.roles import Role
from tests.labeling.factories import claim_next, make_campaign, pairwise_rows

SCHEMA = {
    "questions": [
        {"id": "preference", "type": "pairwise"},
        {"id": "issues", "type": "flags"},
        {"id": "why", "type": "text"},
    ]
}
RANKING = {"questions": [{"id": "rank", "type": "ranking", "allow_ties": True}]}


@pytest.fixture
def reviewers(make_user):
    return [make_user(f"judge{i}", role=Role.REVIEWER) for i in range(4)]


@pytest.fixture(params=["one_statement", "step_by_step"])
def path(request):
    if request.param == "step_by_step":
        request.getfixturevalue("step_by_step")
    return request.param


def submit(reviewer, campaign, answers_for):
    held = claim_next(reviewer=reviewer, campaign=campaign)
    judgement_submit(
        reviewer=reviewer,
        assignment_id=held.pk,
        answers=answers_for(sorted(held.shown_order)),
        client_submission_id=str(uuid.uuid4()),
        time_spent_ms=1000,
    )
    return held


def pick(position, *, flag=False):
    def answers(ids):
        winner = None if position is None else ids[position]
        result = {"preference": {"winner": winner, "strength": 0 if winner is None else 1}}
        if flag:
            result["issues"] = {str(ids[0]): ["unsafe"]}
        return result

    return answers


def test_it_keeps_agreement_and_flags_with_each_judgement_and_undo(manager, reviewers, path):
    campaign = make_campaign(manager=manager, reviewers=reviewers, schema=SCHEMA, tasks=pairwise_rows(1), overlap=4)
    task = Task.objects.get(campaign=campaign)

    submit(reviewers[0], campaign, pick(0))
    task.refresh_from_db()
    assert (task.agreement, task.flag_count) == (None, 0)  # one judgement agrees with nothing yet

    submit(reviewers[1], campaign, pick(1, flag=True))
    task.refresh_from_db()
    assert (task.agreement, task.flag_count) == (0.5, 1)

    submit(reviewers[2], campaign, pick(1))
    task.refresh_from_db()
    assert task.agreement == pytest.approx(2 / 3)

    submit(reviewers[3], campaign, pick(None))  # a tie is an answer of its own
    task.refresh_from_db()
    assert task.agreement == pytest.approx(2 / 4)

    judgement_undo_last(reviewer=reviewers[3], campaign=campaign)
    task.refresh_from_db()
    assert task.agreement == pytest.approx(2 / 3)


def test_ties_agree_with_ties(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, schema=SCHEMA, tasks=pairwise_rows(1), overlap=2)
    submit(reviewers[0], campaign, pick(None))
    submit(reviewers[1], campaign, pick(None))
    assert Task.objects.get(campaign=campaign).agreement == 1.0


def test_ranking_agreement_compares_the_first_place(manager, reviewers):
    rows = [{"id": "r", "prompt": "Rank these", "responses": ["A", "B", "C"]}]
    campaign = make_campaign(manager=manager, reviewers=reviewers, schema=RANKING, tasks=rows, overlap=3)

    def order(*positions):
        return lambda ids: {"rank": {"order": [[ids[p]] for p in positions]}}

    submit(reviewers[0], campaign, order(0, 1, 2))
    submit(reviewers[1], campaign, order(0, 2, 1))
    submit(reviewers[2], campaign, order(2, 0, 1))
    assert Task.objects.get(campaign=campaign).agreement == pytest.approx(2 / 3)


def test_it_counts_skips(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(1), overlap=3)
    for reviewer in reviewers[:2]:
        held = claim_next(reviewer=reviewer, campaign=campaign)
        assignment_skip(reviewer=reviewer, assignment_id=held.pk, reason="Not my field.")
    assert Task.objects.get(campaign=campaign).skip_count == 2
