"""Handing tasks to reviewers.

The rules, in order:

- a reviewer gets tasks only from active campaigns whose pool they belong to;
- never a task they already judged, skipped, or hold now;
- a regular task is held or judged by at most ``overlap`` reviewers at once, under any
  concurrency, so it ends with exactly ``overlap`` judgements;
- an expired lease returns its task to the pool;
- among open tasks, the ones nearest to completion go first (finish tasks before
  starting new ones, so datasets fill with complete items);
- gold tasks are mixed in at the campaign's rate; each reviewer sees each gold task at
  most once, and nothing in what a reviewer receives tells gold from regular;
- responses are shown in a random order, recorded on the assignment.

Locking: the claim runs in one transaction and picks its task with
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent reviewers take
different rows instead of queueing on the same one. The slot is then taken with a
conditional ``UPDATE ... WHERE slots_taken < overlap``, which is what guarantees the
overlap bound. SQLite has no row locks; its write transactions are serialized
(``transaction_mode = IMMEDIATE`` in settings), which gives the same guarantee.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, QuerySet, Subquery
from django.utils import timezone

from labeling.errors import CampaignNotActive, Conflict, LabelingError, NotFound
from labeling.models import Assignment, AssignmentState, Campaign, CampaignStatus, Response, Task

_random = random.SystemRandom()


def assignments_expire(*, now: datetime | None = None) -> int:
    """Return lapsed leases to the pool. Returns how many assignments expired.

    Locks the expiring assignment rows (skipping rows another transaction holds, such
    as a submit in progress, which will settle them itself). Runs inside the caller's
    transaction when there is one.
    """
    now = now or timezone.now()
    # Inside the claim's transaction no savepoint is needed: a failure here fails the claim.
    with transaction.atomic(savepoint=False):
        lapsed = list(
            _lock(Assignment.objects.filter(state=AssignmentState.ACTIVE, lease_expires_at__lt=now)).values_list(
                "pk", "task_id"
            )
        )
        if not lapsed:
            return 0
        Assignment.objects.filter(pk__in=[pk for pk, _ in lapsed]).update(
            state=AssignmentState.EXPIRED, finished_at=now
        )
        for task_id, count in Counter(task_id for _, task_id in lapsed).items():
            Task.objects.filter(pk=task_id).update(slots_taken=F("slots_taken") - count)
    return len(lapsed)


def _lock(queryset: QuerySet) -> QuerySet:
    if connection.features.has_select_for_update_skip_locked:
        return queryset.select_for_update(skip_locked=True, of=("self",))
    return queryset


def _open_tasks(campaign: Campaign, reviewer: AbstractBaseUser) -> QuerySet[Task]:
    """Tasks with responses that the reviewer has not judged, skipped or held (a lapsed hold is fine).

    Each row carries ``lapsed_assignment``: the reviewer's expired assignment of that task,
    if any, which the claim reuses (one assignment per reviewer and task).
    """
    mine = Assignment.objects.filter(task=OuterRef("pk"), reviewer=reviewer).order_by()
    return (
        Task.objects.filter(campaign=campaign, response_count__gte=2)
        .exclude(Exists(mine.exclude(state=AssignmentState.EXPIRED)))
        .annotate(lapsed_assignment=Subquery(mine.filter(state=AssignmentState.EXPIRED).values("pk")[:1]))
        .only("pk", "prompt", "is_gold")
    )


def _take_regular_task(campaign: Campaign, reviewer: AbstractBaseUser) -> Task | None:
    open_regular = _open_tasks(campaign, reviewer).filter(is_gold=False, slots_taken__lt=campaign.overlap)
    # The row lock makes the first try succeed; the retries only matter where row locks are
    # not available and another writer filled the task between the read and the update.
    for _ in range(3):
        task = _lock(open_regular).order_by("-slots_taken", "pk").first()
        if task is None:
            return None
        taken = Task.objects.filter(pk=task.pk, slots_taken__lt=campaign.overlap).update(
            slots_taken=F("slots_taken") + 1
        )
        if taken:
            return task
    return None


def _take_gold_task(campaign: Campaign, reviewer: AbstractBaseUser) -> Task | None:
    # Gold tasks are few; the least-shown one goes first so every gold item gets used.
    task = _lock(_open_tasks(campaign, reviewer).filter(is_gold=True)).order_by("slots_taken", "pk").first()
    if task is not None:
        Task.objects.filter(pk=task.pk).update(slots_taken=F("slots_taken") + 1)
    return task


@dataclass(frozen=True)
class Claim:
    assignment: Assignment
    # The task's responses as (id, text), so the payload needs no second read.
    responses: dict[int, str]
    reused: bool  # the reviewer's own lapsed assignment, taken up again


def assignment_claim_next(
    *, reviewer: AbstractBaseUser, campaign: Campaign, rng: random.Random | None = None
) -> Claim | None:
    """Give ``reviewer`` a new task of ``campaign`` and hold it for the campaign's lease.

    Returns None when nothing is left for this reviewer. The caller has checked that the
    reviewer belongs to the campaign (``selectors.campaign_for_reviewer``). Lapsed leases are returned
    to the pool first, in the same transaction.
    """
    rng = rng or _random
    if campaign.status != CampaignStatus.ACTIVE:
        raise CampaignNotActive(f"The campaign is {campaign.get_status_display().lower()}; it hands out no tasks.")
    now = timezone.now()
    with transaction.atomic():
        assignments_expire(now=now)
        task = None
        if campaign.gold_rate > 0 and rng.random() < campaign.gold_rate:
            task = _take_gold_task(campaign, reviewer)
        task = task or _take_regular_task(campaign, reviewer)
        if task is None:
            # Gold tasks alone never keep a reviewer busy: that would give them away.
            return None
        responses = dict(Response.objects.filter(task=task).values_list("pk", "text"))
        shown_order = list(responses)
        rng.shuffle(shown_order)
        fields = {
            "state": AssignmentState.ACTIVE,
            "shown_order": shown_order,
            "assigned_at": now,
            "lease_expires_at": now + timedelta(seconds=campaign.lease_seconds),
            "finished_at": None,
            "skip_reason": "",
        }
        if task.lapsed_assignment is None:
            assignment = Assignment.objects.create(task=task, reviewer=reviewer, **fields)
        else:
            assignment = Assignment(pk=task.lapsed_assignment, task=task, reviewer=reviewer, **fields)
            assignment.save(update_fields=list(fields))
    return Claim(assignment=assignment, responses=responses, reused=task.lapsed_assignment is not None)


def assignment_skip(*, reviewer: AbstractBaseUser, assignment_id: int, reason: str) -> Assignment:
    """Record that the reviewer passed on a task; its slot goes back to the pool.

    Locks the assignment row, so a skip and a submit of the same assignment serialize.
    """
    reason = (reason or "").strip()
    if not reason:
        raise LabelingError("Say why you skip this task.", {"reason": "This field is required."})
    now = timezone.now()
    with transaction.atomic():
        assignment = Assignment.objects.select_for_update().filter(pk=assignment_id, reviewer=reviewer).first()
        if assignment is None:
            raise NotFound("No such assignment.")
        if assignment.state in (AssignmentState.SUBMITTED, AssignmentState.SKIPPED):
            raise Conflict(f"This task was already {assignment.state}.")
        if assignment.state == AssignmentState.ACTIVE:
            Task.objects.filter(pk=assignment.task_id).update(slots_taken=F("slots_taken") - 1)
        assignment.state = AssignmentState.SKIPPED
        assignment.skip_reason = reason[:500]
        assignment.finished_at = now
        assignment.save(update_fields=["state", "skip_reason", "finished_at"])
    return assignment
