"""Re-queueing a task for more votes: who gets it next, the counts, and the refusals."""

from __future__ import annotations

import uuid

import pytest
from auditlog.models import LogEntry

from labeling.errors import Conflict, LabelingError, NotFound
from labeling.models import CampaignStatus, Task
from labeling.selectors import campaign_stats, review_queue
from labeling.services.assignment import assignment_skip
from labeling.services.judgements import judgement_submit
from labeling.services.tasks import task_requeue
from rlhf_platform.roles import Role
from tests.labeling.factories import claim_next, make_campaign, pairwise_rows


@pytest.fixture
def reviewers(make_user):
    return [make_user(f"judge{i}", role=Role.REVIEWER) for i in range(4)]


def judge(reviewer, campaign, *, first: bool = True):
    held = claim_next(reviewer=reviewer, campaign=campaign)
    assert held is not None
    winner = held.shown_order[0 if first else 1]
    judgement_submit(
        reviewer=reviewer,
        assignment_id=held.pk,
        answers={"preference": {"winner": winner, "strength": 1}},
        client_submission_id=str(uuid.uuid4()),
        time_spent_ms=1000,
    )
    return held


@pytest.fixture(params=["one_statement", "step_by_step"])
def path(request):
    if request.param == "step_by_step":
        request.getfixturevalue("step_by_step")
    return request.param


def test_it_serves_a_complete_task_again_to_a_new_reviewer_and_not_to_one_who_judged_it(manager, reviewers, path):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(1), overlap=2)
    task = Task.objects.get(campaign=campaign)
    judge(reviewers[0], campaign)
    judge(reviewers[1], campaign)
    assert claim_next(reviewer=reviewers[2], campaign=campaign) is None

    task_requeue(task_id=task.pk, campaign=campaign, votes=1, actor=manager)

    assert claim_next(reviewer=reviewers[0], campaign=campaign) is None
    assert review_queue(reviewer=reviewers[0]).finished == [campaign]
    assert review_queue(reviewer=reviewers[2]).campaigns == [campaign]
    held = claim_next(reviewer=reviewers[2], campaign=campaign)
    assert held is not None and held.task_id == task.pk
    # One more vote was asked for, and it is held: nobody else gets the task.
    assert claim_next(reviewer=reviewers[3], campaign=campaign) is None


def test_it_counts_the_added_votes_as_wanted_and_done(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(1), overlap=2)
    task = Task.objects.get(campaign=campaign)
    judge(reviewers[0], campaign)
    judge(reviewers[1], campaign)

    task = task_requeue(task_id=task.pk, campaign=campaign, votes=2, actor=manager)

    assert task.extra_votes == 2
    stats = campaign_stats(campaign=campaign)
    assert (stats["judgements_wanted"], stats["judgements_left"], stats["tasks"]["complete"]) == (4, 2, 0)
    judge(reviewers[2], campaign)
    judge(reviewers[3], campaign)
    stats = campaign_stats(campaign=campaign)
    assert (stats["judgements_left"], stats["tasks"]["complete"]) == (0, 1)
    task.refresh_from_db()
    assert (task.judgement_count, task.slots_taken) == (4, 4)


def test_it_adds_to_what_a_task_in_progress_still_owes(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(1), overlap=3)
    task = Task.objects.get(campaign=campaign)
    judge(reviewers[0], campaign)

    task = task_requeue(task_id=task.pk, campaign=campaign, votes=1, actor=manager)
    task = task_requeue(task_id=task.pk, campaign=campaign, votes=1, actor=manager)

    # Three wanted by the overlap, and two more.
    assert task.extra_votes == 2
    for reviewer in reviewers[1:]:
        judge(reviewer, campaign)
    task.refresh_from_db()
    assert task.judgement_count == 4


def test_it_is_audited(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(1), overlap=1)
    task = Task.objects.get(campaign=campaign)
    task_requeue(task_id=task.pk, campaign=campaign, votes=3, actor=manager)
    entry = LogEntry.objects.get(additional_data__action="task.requeue")
    assert entry.actor == manager
    assert entry.object_pk == str(task.pk)
    assert entry.additional_data["votes"] == 3


@pytest.mark.parametrize("votes", [0, -1, 21, "2", None, True, 1.5])
def test_it_refuses_a_bad_number_of_votes(manager, reviewers, votes):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(1))
    task = Task.objects.get(campaign=campaign)
    with pytest.raises(LabelingError) as raised:
        task_requeue(task_id=task.pk, campaign=campaign, votes=votes, actor=manager)
    assert "votes" in raised.value.errors
    task.refresh_from_db()
    assert task.extra_votes == 0
    assert not LogEntry.objects.filter(additional_data__action="task.requeue").exists()


def test_it_refuses_gold_tasks_closed_campaigns_and_other_campaigns_tasks(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(2, gold_every=2))
    gold = Task.objects.get(campaign=campaign, is_gold=True)
    with pytest.raises(Conflict, match="Gold"):
        task_requeue(task_id=gold.pk, campaign=campaign, votes=1, actor=manager)
    other = make_campaign(manager=manager, tasks=pairwise_rows(1), name="Other")
    with pytest.raises(NotFound):
        task_requeue(task_id=Task.objects.get(campaign=other).pk, campaign=campaign, votes=1, actor=manager)
    regular = Task.objects.get(campaign=campaign, is_gold=False)
    campaign.status = CampaignStatus.CLOSED
    with pytest.raises(Conflict, match="closed"):
        task_requeue(task_id=regular.pk, campaign=campaign, votes=1, actor=manager)


def test_a_skip_keeps_the_reviewer_away_after_a_requeue(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(1), overlap=1)
    task = Task.objects.get(campaign=campaign)
    held = claim_next(reviewer=reviewers[0], campaign=campaign)
    assignment_skip(reviewer=reviewers[0], assignment_id=held.pk, reason="Not my field.")
    judge(reviewers[1], campaign)
    task_requeue(task_id=task.pk, campaign=campaign, votes=1, actor=manager)
    assert claim_next(reviewer=reviewers[0], campaign=campaign) is None
    assert claim_next(reviewer=reviewers[2], campaign=campaign).task_id == task.pk
