import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling.errors import CampaignNotActive, Conflict, LabelingError, NotFound
from labeling.models import Assignment, AssignmentState, CampaignStatus, Task
from labeling.selectors import assignment_payload, campaign_for_reviewer
from labeling.services import assignment as assignment_service
from labeling.services.assignment import (
    assignment_skip,
    assignments_expire,
    lease_sweeps,
)
from labeling.services.judgements import judgement_submit, judgement_submit_and_claim_next
from rlhf_platform.roles import Role
from tests.labeling.factories import claim_next, make_campaign, pairwise_rows


@pytest.fixture
def reviewers(make_user):
    return [make_user(f"r{i}", role=Role.REVIEWER) for i in range(4)]


def submit(reviewer, assignment, winner_index=0, submission_id=None):
    return judgement_submit(
        reviewer=reviewer,
        assignment_id=assignment.pk,
        answers={"preference": {"winner": assignment.shown_order[winner_index], "strength": 1}},
        client_submission_id=submission_id or f"submission-{assignment.pk}-{reviewer.pk}",
        time_spent_ms=1200,
    )


def test_it_only_serves_campaigns_the_reviewer_belongs_to(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers[:1], tasks=pairwise_rows(2))
    assert campaign_for_reviewer(reviewer=reviewers[0], campaign_id=campaign.pk) == campaign
    with pytest.raises(NotFound):
        campaign_for_reviewer(reviewer=reviewers[1], campaign_id=campaign.pk)


def test_it_hands_out_nothing_from_inactive_campaigns(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(2), status=CampaignStatus.PAUSED)
    with pytest.raises(CampaignNotActive, match="paused"):
        claim_next(reviewer=reviewers[0], campaign=campaign)


def test_it_gives_each_task_to_exactly_overlap_reviewers(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(1), overlap=3)
    claims = [claim_next(reviewer=r, campaign=campaign) for r in reviewers]
    assert [c is not None for c in claims] == [True, True, True, False]
    assert Task.objects.get().slots_taken == 3


def test_it_never_gives_a_reviewer_the_same_task_twice(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(3), overlap=3)
    reviewer = reviewers[0]
    held = claim_next(reviewer=reviewer, campaign=campaign)
    judged = claim_next(reviewer=reviewer, campaign=campaign)
    submit(reviewer, judged)
    skipped = claim_next(reviewer=reviewer, campaign=campaign)
    assignment_skip(reviewer=reviewer, assignment_id=skipped.pk, reason="Cannot judge code")
    assert len({held.task_id, judged.task_id, skipped.task_id}) == 3
    assert claim_next(reviewer=reviewer, campaign=campaign) is None


def test_it_serves_tasks_nearest_to_completion_first(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(3), overlap=3)
    first = claim_next(reviewer=reviewers[0], campaign=campaign)
    # Another reviewer gets the task someone already started, not a fresh one.
    assert claim_next(reviewer=reviewers[1], campaign=campaign).task_id == first.task_id


def test_it_returns_expired_leases_to_the_pool(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(1), overlap=1)
    lapsed = claim_next(reviewer=reviewers[0], campaign=campaign)
    assert claim_next(reviewer=reviewers[1], campaign=campaign) is None
    Assignment.objects.filter(pk=lapsed.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    retaken = claim_next(reviewer=reviewers[1], campaign=campaign)
    assert retaken.task_id == lapsed.task_id
    lapsed.refresh_from_db()
    assert lapsed.state == AssignmentState.EXPIRED
    assert Task.objects.get().slots_taken == 1


def test_it_lets_a_reviewer_take_back_a_task_whose_lease_they_let_lapse(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(1), overlap=1)
    lapsed = claim_next(reviewer=reviewers[0], campaign=campaign)
    Assignment.objects.filter(pk=lapsed.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    again = claim_next(reviewer=reviewers[0], campaign=campaign)
    assert again.pk == lapsed.pk and again.state == AssignmentState.ACTIVE


def test_between_sweeps_a_claim_leaves_lapsed_leases_while_other_tasks_are_open(manager, reviewers, monkeypatch):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(3), overlap=1)
    lapsed = claim_next(reviewer=reviewers[0], campaign=campaign)
    Assignment.objects.filter(pk=lapsed.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    monkeypatch.setattr(lease_sweeps, "due", lambda: False)
    other = claim_next(reviewer=reviewers[1], campaign=campaign)
    assert other.task_id != lapsed.task_id
    assert Assignment.objects.get(pk=lapsed.pk).state == AssignmentState.ACTIVE
    # When a sweep is due, the lapsed task is back in the pool, first in id order among the empty ones.
    monkeypatch.setattr(lease_sweeps, "due", lambda: True)
    assert claim_next(reviewer=reviewers[2], campaign=campaign).task_id == lapsed.task_id
    assert Assignment.objects.get(pk=lapsed.pk).state == AssignmentState.EXPIRED


def test_lease_sweeps_are_due_at_most_once_per_interval(monkeypatch):
    schedule = type(lease_sweeps)(seconds=1.0)
    clock = iter([100.0, 100.5, 100.99, 101.0, 101.2])
    monkeypatch.setattr(assignment_service.time, "monotonic", lambda: next(clock))
    assert [schedule.due() for _ in range(5)] == [True, False, False, True, False]


def test_the_step_by_step_claim_and_submit_keep_the_rules(manager, reviewers, step_by_step, monkeypatch):
    monkeypatch.setattr(lease_sweeps, "due", lambda: True)
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(3), overlap=2)
    first = claim_next(reviewer=reviewers[0], campaign=campaign)
    assert sorted(first.shown_order) == sorted(
        Task.objects.get(pk=first.task_id).responses.values_list("pk", flat=True)
    )
    second = claim_next(reviewer=reviewers[1], campaign=campaign)
    assert second.task_id == first.task_id  # fullest first
    assert submit(reviewers[1], second).created
    Assignment.objects.filter(pk=first.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    again = claim_next(reviewer=reviewers[0], campaign=campaign)
    assert again.pk == first.pk and again.state == AssignmentState.ACTIVE
    assert submit(reviewers[0], again).created
    for reviewer in reviewers:
        while (claimed := claim_next(reviewer=reviewer, campaign=campaign)) is not None:
            assert submit(reviewer, claimed).created
    assert set(Task.objects.values_list("judgement_count", "slots_taken")) == {(2, 2)}


@pytest.mark.parametrize("path", ["database default", "step by step"])
def test_claim_and_submit_work_under_the_debug_cursor(manager, reviewers, path, request, monkeypatch):
    """With DEBUG on (as `make demo` serves), Django's debug cursor quotes every parameter a
    statement is given: on SQLite a list among them failed every claim."""
    if path == "step by step":
        request.getfixturevalue("step_by_step")
    monkeypatch.setattr(lease_sweeps, "due", lambda: True)
    campaign = make_campaign(
        manager=manager, reviewers=reviewers, tasks=pairwise_rows(4, gold_every=2), overlap=2, gold_rate=0.5
    )
    with CaptureQueriesContext(connection) as statements:  # forces the debug cursor
        claimed = claim_next(reviewer=reviewers[0], campaign=campaign)
        outcome, following = judgement_submit_and_claim_next(
            reviewer=reviewers[0],
            assignment_id=claimed.pk,
            answers={"preference": {"winner": claimed.shown_order[0], "strength": 1}},
            client_submission_id=f"debug-cursor-{claimed.pk}",
            time_spent_ms=900,
        )
    assert outcome.created and following is not None and following.assignment.pk != claimed.pk
    assert all(statement["sql"] for statement in statements.captured_queries)


def test_it_expires_only_lapsed_leases(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(2), overlap=1)
    claim_next(reviewer=reviewers[0], campaign=campaign)
    assert assignments_expire() == 0
    assert assignments_expire(now=timezone.now() + timedelta(seconds=campaign.lease_seconds + 1)) == 1


def test_it_records_a_random_response_order_per_assignment(manager, make_user):
    many = [make_user(f"x{i}", role=Role.REVIEWER) for i in range(12)]
    campaign = make_campaign(manager=manager, reviewers=many, tasks=pairwise_rows(1), overlap=12)
    orders = {tuple(claim_next(reviewer=r, campaign=campaign).shown_order) for r in many}
    assert len(orders) == 2  # both orders occur among 12 reviewers (fails with probability 2/4096)
    assert set(next(iter(orders))) == set(Task.objects.get().responses.values_list("pk", flat=True))


def test_it_mixes_in_gold_at_the_campaign_rate_and_shows_gold_to_every_reviewer(manager, reviewers):
    campaign = make_campaign(
        manager=manager, reviewers=reviewers, tasks=pairwise_rows(10, gold_every=5), overlap=2, gold_rate=0.5
    )
    rng = random.Random(3)
    gold_seen = {}
    for reviewer in reviewers[:2]:
        tasks = []
        while (claimed := claim_next(reviewer=reviewer, campaign=campaign, rng=rng)) is not None:
            tasks.append(claimed.task)
            submit(reviewer, claimed)
        gold_seen[reviewer.pk] = sorted(t.external_id for t in tasks if t.is_gold)
    # Both reviewers saw both gold tasks, and each saw all 8 regular ones.
    assert list(gold_seen.values()) == [["t0", "t5"], ["t0", "t5"]]
    assert Task.objects.filter(is_gold=True).values_list("judgement_count", flat=True).distinct().get() == 2
    assert set(Task.objects.filter(is_gold=False).values_list("judgement_count", flat=True)) == {2}


def test_it_sends_nothing_that_tells_gold_or_models_apart(manager, reviewers):
    campaign = make_campaign(
        manager=manager,
        reviewers=reviewers,
        tasks=[{"id": "g", "prompt": "Q", "responses": [{"text": "a", "model": "gpt-x"}, "b"], "gold": {"preferred": 0},
                "meta": {"secret": 1}}],
        gold_rate=0.5,
    )  # fmt: skip
    # A campaign with only gold tasks hands out nothing: gold alone would give itself away.
    assert claim_next(reviewer=reviewers[0], campaign=campaign, rng=random.Random(0)) is None
    Task.objects.update(is_gold=False)
    payload = assignment_payload(claim_next(reviewer=reviewers[0], campaign=campaign))
    text = str(payload)
    assert "gpt-x" not in text and "secret" not in text and "preferred" not in text and "'g'" not in text
    assert set(payload) == {"assignment_id", "lease_expires_at", "prompt", "responses", "previous_answers"}


class _Coin(random.Random):
    """A random source whose gold coin always lands the same way."""

    def __init__(self, gold: bool) -> None:
        super().__init__(0)
        self.gold = gold

    def random(self) -> float:
        return 0.0 if self.gold else 0.99


@pytest.mark.parametrize("path", ["database default", "step by step"])
def test_gold_goes_out_only_while_a_regular_task_is_open_to_the_reviewer(manager, reviewers, path, request):
    if path == "step by step":
        request.getfixturevalue("step_by_step")
    campaign = make_campaign(
        manager=manager, reviewers=reviewers, tasks=pairwise_rows(3, gold_every=2), overlap=2, gold_rate=0.5
    )  # t0 and t2 are gold, t1 is regular
    regular = claim_next(reviewer=reviewers[0], campaign=campaign, rng=_Coin(gold=False))
    assert regular.task.external_id == "t1"
    # Only gold is left for this reviewer: nothing, though the coin says gold.
    assert claim_next(reviewer=reviewers[0], campaign=campaign, rng=_Coin(gold=True)) is None
    # Another reviewer, for whom t1 is still open, gets gold when the coin says so.
    assert claim_next(reviewer=reviewers[1], campaign=campaign, rng=_Coin(gold=True)).task.is_gold


def test_it_skips_tasks_without_enough_responses(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=[{"id": "p", "prompt": "generate me"}])
    assert claim_next(reviewer=reviewers[0], campaign=campaign) is None


def test_it_records_skips_with_a_reason_and_frees_the_slot(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(1), overlap=1)
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    with pytest.raises(LabelingError, match="Say why"):
        assignment_skip(reviewer=reviewers[0], assignment_id=assignment.pk, reason=" ")
    skipped = assignment_skip(reviewer=reviewers[0], assignment_id=assignment.pk, reason="Offensive prompt")
    assert (skipped.state, skipped.skip_reason) == (AssignmentState.SKIPPED, "Offensive prompt")
    assert Task.objects.get().slots_taken == 0
    assert claim_next(reviewer=reviewers[1], campaign=campaign) is not None
    with pytest.raises(Conflict):
        assignment_skip(reviewer=reviewers[0], assignment_id=assignment.pk, reason="again")
    with pytest.raises(NotFound):
        assignment_skip(reviewer=reviewers[2], assignment_id=assignment.pk, reason="not mine")
