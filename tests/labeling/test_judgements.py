from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling.errors import CampaignNotActive, Conflict, LabelingError, LeaseLost, NotFound
from labeling.models import Assignment, AssignmentState, Campaign, CampaignStatus, Judgement, Task
from labeling.selectors import assignment_payload, reviewer_progress
from labeling.services import assignment as assignment_services
from labeling.services import judgements as judgement_services
from labeling.services.judgements import judgement_submit, judgement_submit_and_claim_next, judgement_undo_last
from rlhf_platform.roles import Role
from tests.labeling.factories import claim_next, make_campaign, pairwise_rows


@pytest.fixture
def reviewers(make_user):
    return [make_user(f"r{i}", role=Role.REVIEWER) for i in range(3)]


@pytest.fixture
def campaign(manager, reviewers):
    return make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(3), overlap=2)


def answer_for(assignment, strength=2):
    return {"preference": {"winner": assignment.shown_order[1], "strength": strength}}


def submit(reviewer, assignment, submission_id="0f9a1c7e-0001", **overrides):
    return judgement_submit(
        reviewer=reviewer,
        assignment_id=assignment.pk,
        answers=overrides.pop("answers", answer_for(assignment)),
        client_submission_id=submission_id,
        time_spent_ms=overrides.pop("time_spent_ms", 4200),
    )


def test_it_records_a_judgement_with_the_shown_order(campaign, reviewers):
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    outcome = submit(reviewers[0], assignment)
    judgement = outcome.judgement
    assert outcome.created
    assert judgement.answers == {"preference": {**answer_for(assignment)["preference"], "both_bad": False}}
    assert judgement.shown_order == assignment.shown_order
    assert judgement.time_spent_ms == 4200
    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.SUBMITTED
    assert Task.objects.get(pk=assignment.task_id).judgement_count == 1


def test_it_is_idempotent_by_client_submission_id(campaign, reviewers):
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    first = submit(reviewers[0], assignment)
    retry = submit(reviewers[0], assignment)
    assert not retry.created and retry.judgement.pk == first.judgement.pk
    assert Judgement.objects.count() == 1
    assert Task.objects.get(pk=assignment.task_id).judgement_count == 1


def test_it_refuses_a_reused_submission_id_on_another_task(campaign, reviewers):
    submit(reviewers[0], claim_next(reviewer=reviewers[0], campaign=campaign))
    other = claim_next(reviewer=reviewers[0], campaign=campaign)
    with pytest.raises(Conflict, match="already used"):
        submit(reviewers[0], other)


def test_it_refuses_a_second_submission_with_a_new_id(campaign, reviewers):
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    submit(reviewers[0], assignment)
    with pytest.raises(Conflict, match="already submitted"):
        submit(reviewers[0], assignment, submission_id="another-submission")


def test_it_returns_field_errors_and_writes_nothing(campaign, reviewers):
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    with pytest.raises(LabelingError) as caught:
        submit(reviewers[0], assignment, answers={"preference": {"winner": 999999, "strength": 1}})
    assert caught.value.errors == {
        "preference.winner": "must be the id of one of this task's responses, or null for a tie"
    }
    with pytest.raises(LabelingError) as caught:
        submit(reviewers[0], assignment, submission_id="short")
    assert "client_submission_id" in caught.value.errors
    with pytest.raises(LabelingError):
        submit(reviewers[0], assignment, time_spent_ms=-5)
    assert Judgement.objects.count() == 0
    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.ACTIVE


def test_it_hides_other_reviewers_assignments(campaign, reviewers):
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    with pytest.raises(NotFound):
        submit(reviewers[1], assignment)


def test_it_keeps_a_late_answer_when_the_task_still_has_room(campaign, reviewers):
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    Assignment.objects.filter(pk=assignment.pk).update(state=AssignmentState.EXPIRED)
    Task.objects.filter(pk=assignment.task_id).update(slots_taken=0)
    assert submit(reviewers[0], assignment).created
    assert Task.objects.get(pk=assignment.task_id).slots_taken == 1


def test_it_rejects_an_answer_after_the_lease_was_lost(manager, reviewers):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(1), overlap=1)
    lapsed = claim_next(reviewer=reviewers[0], campaign=campaign)
    Assignment.objects.filter(pk=lapsed.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=5))
    taker = claim_next(reviewer=reviewers[1], campaign=campaign)
    submit(reviewers[1], taker, submission_id="taker-submission")
    with pytest.raises(LeaseLost, match="expired and other reviewers have since completed it"):
        submit(reviewers[0], lapsed)
    assert Task.objects.get().judgement_count == 1


def test_it_refuses_answers_for_a_closed_campaign(campaign, reviewers):
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.CLOSED)
    with pytest.raises(CampaignNotActive):
        submit(reviewers[0], assignment)


def test_it_undoes_the_last_submission_and_hands_the_task_back(campaign, reviewers):
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    first = submit(reviewers[0], assignment).judgement
    reopened = judgement_undo_last(reviewer=reviewers[0], campaign=campaign)
    assert reopened.pk == assignment.pk and reopened.state == AssignmentState.ACTIVE
    first.refresh_from_db()
    assert first.retracted_at is not None
    assert Task.objects.get(pk=assignment.task_id).judgement_count == 0
    # The workspace offers the earlier answers again.
    assert assignment_payload(reopened)["previous_answers"] == first.answers
    second = submit(reviewers[0], reopened, submission_id="second-submission", answers=answer_for(assignment, 1))
    assert second.created
    assert Task.objects.get(pk=assignment.task_id).judgement_count == 1
    assert Judgement.objects.filter(retracted_at__isnull=True).get().pk == second.judgement.pk


def test_it_refuses_to_undo_when_there_is_nothing_or_it_is_too_old(campaign, reviewers):
    with pytest.raises(Conflict, match="nothing to undo"):
        judgement_undo_last(reviewer=reviewers[0], campaign=campaign)
    submit(reviewers[0], claim_next(reviewer=reviewers[0], campaign=campaign))
    Judgement.objects.update(submitted_at=timezone.now() - timedelta(seconds=campaign.lease_seconds + 1))
    with pytest.raises(Conflict, match="too old"):
        judgement_undo_last(reviewer=reviewers[0], campaign=campaign)


def test_it_counts_progress_for_the_reviewer(campaign, reviewers):
    assert reviewer_progress(reviewer=reviewers[0], campaign=campaign) == {"done_today": 0, "left_in_campaign": 6}
    submit(reviewers[0], claim_next(reviewer=reviewers[0], campaign=campaign))
    assert reviewer_progress(reviewer=reviewers[0], campaign=campaign) == {"done_today": 1, "left_in_campaign": 5}


def submit_and_claim_next(reviewer, assignment, submission_id="0f9a1c7e-0002"):
    return judgement_submit_and_claim_next(
        reviewer=reviewer,
        assignment_id=assignment.pk,
        answers=answer_for(assignment),
        client_submission_id=submission_id,
        time_spent_ms=4200,
    )


@pytest.fixture
def no_sweep_due(monkeypatch):
    monkeypatch.setattr(assignment_services.lease_sweeps, "due", lambda: False)


def test_a_submit_and_the_next_claim_share_one_statement_on_postgresql(campaign, reviewers, no_sweep_due):
    if connection.vendor != "postgresql":
        pytest.skip("data-modifying WITH is PostgreSQL's; CI runs this on PostgreSQL")
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    with CaptureQueriesContext(connection) as queries:
        outcome, claim = submit_and_claim_next(reviewers[0], assignment)
    # The read of the assignment, then one statement that writes the judgement and holds the next
    # task (the test's transaction adds a savepoint around it).
    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 2, [sql[:80] for sql in statements]
    assert outcome.created and claim is not None and claim.assignment.task_id != assignment.task_id
    held = Assignment.objects.get(reviewer=reviewers[0], state=AssignmentState.ACTIVE)
    assert held.pk == claim.assignment.pk and held.shown_order == claim.assignment.shown_order
    assert set(claim.responses) == set(held.shown_order)
    assert Task.objects.get(pk=held.task_id).slots_taken == 1
    assert Task.objects.get(pk=assignment.task_id).judgement_count == 1


def test_a_submit_that_finds_its_hold_changed_holds_no_task_in_the_same_statement(
    campaign, reviewers, monkeypatch, no_sweep_due
):
    """When the hold changed between the read and the write, the one statement writes nothing
    and picks nothing; the locked path then saves the answer and one claim follows."""
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    read = judgement_services._assignment_to_submit

    def read_a_stale_hold(*args, **kwargs):
        to_submit = read(*args, **kwargs)
        return to_submit._replace(assigned_at=to_submit.assigned_at - timedelta(seconds=1))

    monkeypatch.setattr(judgement_services, "_assignment_to_submit", read_a_stale_hold)
    outcome, claim = submit_and_claim_next(reviewers[0], assignment)
    assert outcome.created and claim is not None
    assert Judgement.objects.filter(reviewer=reviewers[0]).count() == 1
    assert list(Assignment.objects.filter(reviewer=reviewers[0], state=AssignmentState.ACTIVE)) == [claim.assignment]
    assert sorted(Task.objects.values_list("slots_taken", flat=True)) == [0, 1, 1]


def test_a_submit_with_nothing_left_to_claim_still_saves(manager, reviewers, no_sweep_due):
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(1), overlap=1)
    assignment = claim_next(reviewer=reviewers[0], campaign=campaign)
    outcome, claim = submit_and_claim_next(reviewers[0], assignment)
    assert outcome.created and claim is None
    assert Task.objects.get().judgement_count == 1
