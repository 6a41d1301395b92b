"""Submitting, and undoing, a reviewer's answers for a task.

A submission is validated against the campaign's questions, written atomically, and
idempotent by the client's submission id: a retried request returns the judgement the
first one made. Judgements are never edited; an undo marks the reviewer's latest one
retracted and gives the task back to them to answer again.

Locking: both operations lock the assignment row (``SELECT ... FOR UPDATE``), so a
submit, a retry of it, a skip and an undo of the same assignment serialize.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from labeling.errors import CampaignNotActive, Conflict, LabelingError, LeaseLost, NotFound
from labeling.models import Assignment, AssignmentState, Campaign, CampaignStatus, Judgement, Task
from labeling.schema import AnswerError, validate_answers

SUBMIT_FIELDS = (
    "state", "shown_order", "task_id", "reviewer_id", "task__is_gold", "task__campaign__status",
    "task__campaign__question_schema", "task__campaign__overlap",
)  # fmt: skip
# Longer than any honest look at one task; longer values are clipped, not rejected.
MAX_TIME_SPENT_MS = 6 * 60 * 60 * 1000


@dataclass(frozen=True)
class SubmitOutcome:
    judgement: Judgement
    created: bool  # False when this was a retry of an earlier submission


def _check_submission_id(client_submission_id: str) -> str:
    value = (client_submission_id or "").strip()
    if not 8 <= len(value) <= 64:
        raise LabelingError(
            "Every submission needs a client submission id (8 to 64 characters, e.g. a UUID).",
            {"client_submission_id": "Must be 8 to 64 characters."},
        )
    return value


def _retake_lapsed_slot(assignment: Assignment, campaign: Campaign) -> None:
    """A submit after the lease lapsed still counts if the task has room for it."""
    task_filter = Task.objects.filter(pk=assignment.task_id)
    if not assignment.task.is_gold:
        task_filter = task_filter.filter(slots_taken__lt=campaign.overlap)
    if not task_filter.update(slots_taken=F("slots_taken") + 1):
        raise LeaseLost(
            "Your hold on this task expired and other reviewers have since completed it, "
            "so this answer was not saved. The next task is ready."
        )


def judgement_submit(
    *,
    reviewer: AbstractBaseUser,
    assignment_id: int,
    answers: Any,
    client_submission_id: str,
    time_spent_ms: int,
) -> SubmitOutcome:
    """Record the reviewer's answers for the task of ``assignment_id``."""
    client_submission_id = _check_submission_id(client_submission_id)
    if not isinstance(time_spent_ms, int) or isinstance(time_spent_ms, bool) or time_spent_ms < 0:
        raise LabelingError("time_spent_ms must be a non-negative integer.", {"time_spent_ms": "Must be >= 0."})
    try:
        return _submit(reviewer, assignment_id, answers, client_submission_id, time_spent_ms)
    except IntegrityError:
        # The (reviewer, client_submission_id) constraint: the id named another submission,
        # and the whole transaction was rolled back.
        raise Conflict("This client submission id was already used for another answer.") from None


def _submit(
    reviewer: AbstractBaseUser, assignment_id: int, answers: Any, client_submission_id: str, time_spent_ms: int
) -> SubmitOutcome:
    now = timezone.now()
    with transaction.atomic():
        # Only the assignment row is locked (of=self): locking the joined campaign row too
        # would queue every submit of a campaign behind one another.
        assignment = (
            Assignment.objects.select_for_update(of=("self",))
            .select_related("task__campaign")
            .only(*SUBMIT_FIELDS)
            .filter(pk=assignment_id, reviewer=reviewer)
            .first()
        )
        if assignment is None:
            raise NotFound("No such assignment.")
        if assignment.state == AssignmentState.SUBMITTED:
            # A retry of the submission that got here first answers with the same judgement.
            earlier = Judgement.objects.filter(
                assignment=assignment, reviewer=reviewer, client_submission_id=client_submission_id
            ).first()
            if earlier is not None:
                return SubmitOutcome(earlier, created=False)
        task, campaign = assignment.task, assignment.task.campaign
        if campaign.status == CampaignStatus.CLOSED:
            raise CampaignNotActive("The campaign is closed; it takes no more answers.")
        if assignment.state in (AssignmentState.SUBMITTED, AssignmentState.SKIPPED):
            raise Conflict(f"You already {assignment.state} this task.")
        try:
            cleaned = validate_answers(campaign.schema, answers, assignment.shown_order)
        except AnswerError as error:
            raise LabelingError("Some answers need fixing.", error.errors) from None
        if assignment.state == AssignmentState.EXPIRED:
            _retake_lapsed_slot(assignment, campaign)
        judgement = Judgement.objects.create(
            assignment=assignment,
            task=task,
            reviewer=reviewer,
            answers=cleaned,
            shown_order=assignment.shown_order,
            time_spent_ms=min(time_spent_ms, MAX_TIME_SPENT_MS),
            client_submission_id=client_submission_id,
            submitted_at=now,
        )
        assignment.state = AssignmentState.SUBMITTED
        assignment.finished_at = now
        assignment.save(update_fields=["state", "finished_at"])
        Task.objects.filter(pk=task.pk).update(judgement_count=F("judgement_count") + 1)
    return SubmitOutcome(judgement, created=True)


def judgement_undo_last(*, reviewer: AbstractBaseUser, campaign: Campaign) -> Assignment:
    """Retract the reviewer's latest judgement in ``campaign`` and give its task back to them.

    Allowed while the task is still open to them: the campaign is not closed and the
    judgement is younger than the campaign's lease. The task keeps its slot, so nobody
    else takes it meanwhile; the reviewer answers it again under a fresh lease.
    """
    now = timezone.now()
    with transaction.atomic():
        latest = (
            Judgement.objects.filter(reviewer=reviewer, task__campaign=campaign, retracted_at__isnull=True)
            .order_by("-submitted_at", "-pk")
            .first()
        )
        if latest is None:
            raise Conflict("There is nothing to undo.")
        assignment = Assignment.objects.select_for_update().get(pk=latest.assignment_id)
        if campaign.status == CampaignStatus.CLOSED:
            raise CampaignNotActive("The campaign is closed; its answers can no longer change.")
        if latest.submitted_at + timedelta(seconds=campaign.lease_seconds) < now:
            raise Conflict("Your last answer is too old to undo.")
        if assignment.state != AssignmentState.SUBMITTED:
            raise Conflict("Your last answer can no longer be undone.")
        latest.retracted_at = now
        latest.save(update_fields=["retracted_at"])
        assignment.state = AssignmentState.ACTIVE
        assignment.finished_at = None
        assignment.lease_expires_at = now + timedelta(seconds=campaign.lease_seconds)
        assignment.save(update_fields=["state", "finished_at", "lease_expires_at"])
        Task.objects.filter(pk=assignment.task_id).update(judgement_count=F("judgement_count") - 1)
    return assignment
