"""Submitting, and undoing, a reviewer's answers for a task.

A submission is validated against the campaign's questions, written atomically, and
idempotent by the client's submission id: a retried request returns the judgement the
first one made. Judgements are never edited; an undo marks the reviewer's latest one
retracted and gives the task back to them to answer again.

Locking: both operations lock the assignment row (``SELECT ... FOR UPDATE``), so a
submit, a retry of it, a skip and an undo of the same assignment serialize. On PostgreSQL
a submit of an active hold, the common case, writes in one statement instead, which
changes the row only if it is still the hold that was read; anything else (a retry, a
lapsed lease, a race) takes the locked path. Submit-and-next
(``judgement_submit_and_claim_next``) puts the claim of the reviewer's next task into that
same statement, after the submit's writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import F
from django.utils import timezone

from labeling.errors import CampaignNotActive, Conflict, LabelingError, LeaseLost, NotFound
from labeling.models import Assignment, AssignmentState, Campaign, CampaignStatus, Judgement, Task
from labeling.schema import AnswerError, validate_answers
from labeling.services.assignment import (
    BEFORE_CLAIM,
    Claim,
    ClaimAfterWrite,
    assignment_claim_next,
    claim_after_write,
)
from labeling.services.sql import (
    datetime_to_db,
    execute,
    field_from_db,
    field_to_db,
    instance_from_db,
    one_statement_atomic,
    with_row_locks,
    writes_in_one_statement,
)
from labeling.services.tasks import SUMMARY_ON_SUBMIT, submit_summary_params, task_summary_refresh

# Longer than any honest look at one task; longer values are clipped, not rejected.
MAX_TIME_SPENT_MS = 6 * 60 * 60 * 1000


@dataclass(frozen=True)
class SubmitOutcome:
    judgement: Judgement
    created: bool  # False when this was a retry of an earlier submission
    # A new judgement's campaign, as far as claiming the reviewer's next task needs it; None
    # when the reviewer has left its pool, and after a retry.
    campaign_for_next: Campaign | None = None


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
        task_filter = task_filter.filter(slots_taken__lt=campaign.overlap + F("extra_votes"))
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
    outcome, _ = _checked_submit(reviewer, assignment_id, answers, client_submission_id, time_spent_ms)
    return outcome


def judgement_submit_and_claim_next(
    *,
    reviewer: AbstractBaseUser,
    assignment_id: int,
    answers: Any,
    client_submission_id: str,
    time_spent_ms: int,
) -> tuple[SubmitOutcome, Claim | None]:
    """``judgement_submit``, then ``judgement_claim_next``: submit and next in one request.

    On PostgreSQL the submit of an active hold and the claim's first try are one statement.
    """
    outcome, claim = _checked_submit(
        reviewer, assignment_id, answers, client_submission_id, time_spent_ms, claim_next=True
    )
    if claim is None:
        claim = judgement_claim_next(reviewer=reviewer, outcome=outcome)
    return outcome, claim


def _checked_submit(
    reviewer: AbstractBaseUser,
    assignment_id: int,
    answers: Any,
    client_submission_id: str,
    time_spent_ms: int,
    *,
    claim_next: bool = False,
) -> tuple[SubmitOutcome, Claim | None]:
    client_submission_id = _check_submission_id(client_submission_id)
    if not isinstance(time_spent_ms, int) or isinstance(time_spent_ms, bool) or time_spent_ms < 0:
        raise LabelingError("time_spent_ms must be a non-negative integer.", {"time_spent_ms": "Must be >= 0."})
    try:
        return _submit(reviewer, assignment_id, answers, client_submission_id, time_spent_ms, claim_next=claim_next)
    except IntegrityError:
        # The (reviewer, client_submission_id) constraint: the id named another submission,
        # and the whole transaction was rolled back.
        raise Conflict("This client submission id was already used for another answer.") from None


# The submit's statements are written in SQL rather than built by the ORM, as the claim's
# are (see labeling.services.assignment). The read also fetches what claiming the reviewer's
# next task needs (``judgement_claim_next``), so submit-and-next asks for the campaign once.
# Where it locks, only the assignment row is locked (OF a): locking the joined campaign row too
# would queue every submit of a campaign behind one another.
_ASSIGNMENT_TO_SUBMIT = """
    SELECT a.state, a.shown_order, a.assigned_at, a.task_id, t.is_gold, t.campaign_id,
           c.status, c.question_schema, c.overlap, c.lease_seconds, c.gold_rate,
           EXISTS (SELECT 1 FROM labeling_campaign_reviewers pool
                    WHERE pool.campaign_id = c.id AND pool.user_id = %(reviewer)s)
      FROM labeling_assignment a
      JOIN labeling_task t ON t.id = a.task_id
      JOIN labeling_campaign c ON c.id = t.campaign_id
     WHERE a.id = %(assignment)s AND a.reviewer_id = %(reviewer)s{lock}
"""
_JUDGEMENT_COLUMNS = """labeling_judgement
           (assignment_id, task_id, reviewer_id, answers, shown_order, time_spent_ms, client_submission_id,
            submitted_at, retracted_at)"""
_RECORD_JUDGEMENT = f"""
    INSERT INTO {_JUDGEMENT_COLUMNS}
    VALUES (%(assignment)s, %(task)s, %(reviewer)s, %(answers)s, %(shown_order)s, %(time_spent_ms)s,
            %(client_submission_id)s, %(now)s, NULL)
    RETURNING id
"""  # noqa: S608 (a constant)
_MARK_SUBMITTED = "UPDATE labeling_assignment SET state = 'submitted', finished_at = %(now)s WHERE id = %(assignment)s"
_COUNT_JUDGEMENT = "UPDATE labeling_task SET judgement_count = judgement_count + 1 WHERE id = %(task)s"
# PostgreSQL: the three writes of a submit in one statement, which is atomic by itself, so it
# needs no transaction (and no BEGIN and COMMIT round trips). It writes only while the
# assignment is still the active hold that was read and validated (same ``assigned_at``);
# otherwise it writes nothing and the submit takes the locked path.
_SUBMITTED = """submitted AS (
        UPDATE labeling_assignment SET state = 'submitted', finished_at = %(now)s
         WHERE id = %(assignment)s AND state = 'active' AND assigned_at = %(assigned_at)s
        RETURNING task_id
    ), {counted} AS (
        UPDATE labeling_task SET judgement_count = judgement_count + 1{summary}
         WHERE id IN (SELECT task_id FROM submitted)
        RETURNING id
    )"""
_RECORD_SUBMITTED = f"""
    INSERT INTO {_JUDGEMENT_COLUMNS}
    SELECT %(assignment)s, task_id, %(reviewer)s, %(answers)s, %(shown_order)s, %(time_spent_ms)s,
           %(client_submission_id)s, %(now)s, NULL
      FROM submitted
    RETURNING id
"""  # noqa: S608 (a constant)
_SUBMIT_IN_ONE_STATEMENT = "WITH " + _SUBMITTED.format(counted="counted", summary=SUMMARY_ON_SUBMIT) + _RECORD_SUBMITTED
_SUBMIT_AND_CLAIM = """WITH {submitted}, recorded AS ({record}), {claim}
    SELECT recorded.id, claimed.* FROM recorded LEFT JOIN (SELECT {claimed}) AS claimed ON true"""


@cache
def _submit_and_claim_in_one_statement(claim_ctes: str, claimed_columns: str) -> str:
    """The submit's statement, then the claim of the reviewer's next task: one round trip and
    one commit for both. The claim picks its task after the submit's writes (``BEFORE_CLAIM``:
    the task's count), so that only the submit's part can wait for a row lock."""
    return _SUBMIT_AND_CLAIM.format(
        submitted=_SUBMITTED.format(counted=BEFORE_CLAIM, summary=SUMMARY_ON_SUBMIT),
        record=_RECORD_SUBMITTED,
        claim=claim_ctes,
        claimed=claimed_columns,
    )


class _ToSubmit(NamedTuple):
    # The reviewer's assignment, with its task and campaign as far as a submit and a claim need them.
    assignment: Assignment
    in_pool: bool  # the reviewer is still in the campaign's pool
    assigned_at: Any  # as the database returned it, to find the same hold again


def _assignment_to_submit(
    cursor: CursorWrapper, reviewer: AbstractBaseUser, assignment_id: int, *, lock: bool
) -> _ToSubmit:
    """What a submit of ``assignment_id`` needs to know, with the assignment row locked if ``lock``."""
    sql = with_row_locks(_ASSIGNMENT_TO_SUBMIT, of="a") if lock else _ASSIGNMENT_TO_SUBMIT.format(lock="")
    execute(cursor, sql, {"assignment": assignment_id, "reviewer": reviewer.pk})
    row = cursor.fetchone()
    if row is None:
        raise NotFound("No such assignment.")
    (state, shown_order, assigned_at, task_id, is_gold, campaign_id) = row[:6]
    (status, question_schema, overlap, lease_seconds, gold_rate, in_pool) = row[6:]
    campaign = instance_from_db(
        Campaign,
        {
            "id": campaign_id,
            "status": status,
            "question_schema": field_from_db(Campaign, "question_schema", question_schema),
            "overlap": overlap,
            "lease_seconds": lease_seconds,
            "gold_rate": gold_rate,
        },
    )
    task = instance_from_db(Task, {"id": task_id, "campaign_id": campaign_id, "is_gold": is_gold})
    task.campaign = campaign
    assignment = instance_from_db(
        Assignment,
        {
            "id": assignment_id,
            "task_id": task_id,
            "reviewer_id": reviewer.pk,
            "state": state,
            "shown_order": field_from_db(Assignment, "shown_order", shown_order),
        },
    )
    assignment.task = task
    return _ToSubmit(assignment, in_pool, assigned_at)


def _validated_answers(assignment: Assignment, answers: Any) -> Any:
    """The answers, cleaned, if the assignment can take them; the errors a reviewer can fix otherwise."""
    if assignment.task.campaign.status == CampaignStatus.CLOSED:
        raise CampaignNotActive("The campaign is closed; it takes no more answers.")
    if assignment.state in (AssignmentState.SUBMITTED, AssignmentState.SKIPPED):
        raise Conflict(f"You already {assignment.state} this task.")
    try:
        return validate_answers(assignment.task.campaign.schema, answers, assignment.shown_order)
    except AnswerError as error:
        raise LabelingError("Some answers need fixing.", error.errors) from None


def _submit(
    reviewer: AbstractBaseUser,
    assignment_id: int,
    answers: Any,
    client_submission_id: str,
    time_spent_ms: int,
    *,
    claim_next: bool,
) -> tuple[SubmitOutcome, Claim | None]:
    """The submit, and with ``claim_next`` the first try at the reviewer's next task where it
    can share the submit's statement (None when it did not, or found nothing)."""
    now = timezone.now()
    judgement_values = {
        "reviewer": reviewer,
        "time_spent_ms": min(time_spent_ms, MAX_TIME_SPENT_MS),
        "client_submission_id": client_submission_id,
        "submitted_at": now,
    }
    if writes_in_one_statement():
        # The common case, an active hold, in two statements: an unlocked read, then one write
        # that holds only if the hold is still as read. Anything else takes the locked path.
        with connection.cursor() as cursor:
            assignment, in_pool, assigned_at = _assignment_to_submit(cursor, reviewer, assignment_id, lock=False)
            if assignment.state == AssignmentState.ACTIVE:
                judgement = _judgement(assignment, _validated_answers(assignment, answers), **judgement_values)
                params = {**_judgement_params(judgement), "assigned_at": assigned_at}
                params.update(submit_summary_params(assignment.task.campaign.question_schema, judgement.answers))
                sql, next_claim = _SUBMIT_IN_ONE_STATEMENT, None
                if claim_next and in_pool:
                    next_claim = _claim_after_submit(reviewer, assignment.task.campaign, now)
                if next_claim is not None:
                    sql = _submit_and_claim_in_one_statement(next_claim.ctes, next_claim.columns)
                    params.update(next_claim.params)
                with one_statement_atomic():
                    execute(cursor, sql, params)
                    row = cursor.fetchone()
                if row is not None:
                    claim = next_claim.claimed(row[1:]) if next_claim is not None else None
                    return _submitted(judgement, row[0], in_pool), claim
    with transaction.atomic(), connection.cursor() as cursor:
        assignment, in_pool, _ = _assignment_to_submit(cursor, reviewer, assignment_id, lock=True)
        if assignment.state == AssignmentState.SUBMITTED:
            # A retry of the submission that got here first answers with the same judgement.
            earlier = Judgement.objects.filter(
                assignment=assignment, reviewer=reviewer, client_submission_id=client_submission_id
            ).first()
            if earlier is not None:
                return SubmitOutcome(earlier, created=False), None
        cleaned = _validated_answers(assignment, answers)
        if assignment.state == AssignmentState.EXPIRED:
            _retake_lapsed_slot(assignment, assignment.task.campaign)
        judgement = _judgement(assignment, cleaned, **judgement_values)
        params = _judgement_params(judgement)
        execute(cursor, _RECORD_JUDGEMENT, params)
        judgement_id = cursor.fetchone()[0]
        execute(cursor, _MARK_SUBMITTED, params)
        execute(cursor, _COUNT_JUDGEMENT, params)
        task_summary_refresh(task_id=assignment.task_id, campaign=assignment.task.campaign)
    return _submitted(judgement, judgement_id, in_pool), None


def _claim_after_submit(reviewer: AbstractBaseUser, campaign: Campaign, now: datetime) -> ClaimAfterWrite | None:
    try:
        return claim_after_write(reviewer=reviewer, campaign=campaign, now=now)
    except CampaignNotActive:
        return None


def _judgement(assignment: Assignment, answers: Any, **values: Any) -> Judgement:
    return Judgement(
        assignment=assignment, task=assignment.task, answers=answers, shown_order=assignment.shown_order, **values
    )


def _judgement_params(judgement: Judgement) -> dict[str, Any]:
    """The statement parameters of a judgement to record, and of its assignment's and task's updates."""
    return {
        "assignment": judgement.assignment_id,
        "task": judgement.task_id,
        "reviewer": judgement.reviewer_id,
        "answers": field_to_db(Judgement, "answers", judgement.answers),
        "shown_order": field_to_db(Judgement, "shown_order", judgement.shown_order),
        "time_spent_ms": judgement.time_spent_ms,
        "client_submission_id": judgement.client_submission_id,
        "now": datetime_to_db(judgement.submitted_at),
    }


def _submitted(judgement: Judgement, judgement_id: int, in_pool: bool) -> SubmitOutcome:
    judgement.pk = judgement_id
    judgement._state.adding = False
    judgement.assignment.state = AssignmentState.SUBMITTED
    judgement.assignment.finished_at = judgement.submitted_at
    campaign = judgement.task.campaign
    return SubmitOutcome(judgement, created=True, campaign_for_next=campaign if in_pool else None)


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
        task_summary_refresh(task_id=assignment.task_id, campaign=campaign)
    return assignment


def judgement_claim_next(*, reviewer: AbstractBaseUser, outcome: SubmitOutcome) -> Claim | None:
    """After a submit, hold the reviewer's next task of the judgement's campaign (submit and next in one request).

    None when there is none to hold now: nothing left, the campaign no longer active, or the
    reviewer no longer in its pool; and after a retried submission, which must not hold a
    second task. The judgement stands either way; ``next/`` says why.
    """
    if not outcome.created or outcome.campaign_for_next is None:
        return None
    try:
        return assignment_claim_next(reviewer=reviewer, campaign=outcome.campaign_for_next)
    except CampaignNotActive:
        return None
