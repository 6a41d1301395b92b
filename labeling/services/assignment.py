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
different rows instead of queueing on the same one; only when every open task is held by
another transaction does it wait for them (``FOR UPDATE``), so that "nothing left" is
true. The slot is then taken with a conditional ``UPDATE ... WHERE slots_taken < overlap``,
which is what guarantees the overlap bound. SQLite has no row locks; its write transactions are serialized
(``transaction_mode = IMMEDIATE`` in settings), which gives the same guarantee.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import F
from django.utils import timezone

from labeling.errors import CampaignNotActive, Conflict, LabelingError, NotFound
from labeling.models import Assignment, AssignmentState, Campaign, CampaignStatus, Task
from labeling.services.sql import (
    datetime_to_db,
    field_from_db,
    field_to_db,
    instance_from_db,
    with_row_locks,
    writes_in_one_statement,
)

_random = random.SystemRandom()


# The claim's statements are written in SQL rather than built by the ORM: building them cost
# four times more CPU than PostgreSQL took to run them (benchmarks/labeling_load.py). The same
# SQL serves SQLite, without row locks; on PostgreSQL the pick, the slot take and the read of
# the task are one statement (three round trips fewer).
_LAPSED_LEASES = """
    SELECT id, task_id FROM labeling_assignment
     WHERE state = 'active' AND lease_expires_at < %(now)s{lock}
"""
# Tasks the reviewer has not judged, skipped or held (a lapsed hold is fine).
_OPEN_TASK = """
    SELECT t.id{columns}
      FROM labeling_task t
     WHERE t.campaign_id = %(campaign)s AND t.response_count >= 2 AND t.is_gold = %(gold)s{room}
       AND NOT EXISTS (SELECT 1 FROM labeling_assignment held
                        WHERE held.task_id = t.id AND held.reviewer_id = %(reviewer)s AND held.state <> 'expired')
     ORDER BY {order}, t.id
     LIMIT 1{lock}
"""
# The reviewer's lapsed assignment of the task, if any, which the claim reuses (one per reviewer and task).
_LAPSED_HOLD = """(SELECT mine.id FROM labeling_assignment mine
                    WHERE mine.task_id = {task}.id AND mine.reviewer_id = %(reviewer)s AND mine.state = 'expired')"""
# Regular tasks: a slot must be free; the fullest first. Gold tasks: shown to every reviewer
# once, the least-shown first so every gold item gets used.
_HAS_ROOM = " AND slots_taken < %(overlap)s"
_REGULAR = {"room": _HAS_ROOM.replace("slots", "t.slots"), "order": "t.slots_taken DESC"}
_GOLD = {"room": "", "order": "t.slots_taken"}
_TAKE_SLOT = "UPDATE labeling_task SET slots_taken = slots_taken + 1 WHERE id = %(task)s"
_TASK_RESPONSES = "SELECT id, text FROM labeling_response WHERE task_id = %(task)s ORDER BY position"
# PostgreSQL: pick, take a slot and read the task in one statement: the subquery picks and
# locks the task, the update takes its slot, and RETURNING reads the prompt, the reviewer's
# lapsed hold and the responses (ids and texts in position order).
_TAKE_OPEN_TASK = """
    UPDATE labeling_task SET slots_taken = slots_taken + 1
     WHERE id = ({pick}){room}
    RETURNING id, prompt, {lapsed},
              (SELECT array_agg(r.id ORDER BY r.position) FROM labeling_response r
                WHERE r.task_id = labeling_task.id),
              (SELECT array_agg(r.text ORDER BY r.position) FROM labeling_response r
                WHERE r.task_id = labeling_task.id)
"""
_HOLD = """
    INSERT INTO labeling_assignment
           (task_id, reviewer_id, state, shown_order, assigned_at, lease_expires_at, finished_at, skip_reason)
    VALUES (%(task)s, %(reviewer)s, 'active', %(shown_order)s, %(now)s, %(expires)s, NULL, '')
    RETURNING id
"""
_HOLD_AGAIN = """
    UPDATE labeling_assignment
       SET state = 'active', shown_order = %(shown_order)s, assigned_at = %(now)s, lease_expires_at = %(expires)s,
           finished_at = NULL, skip_reason = ''
     WHERE id = %(assignment)s
"""


def assignments_expire(*, now: datetime | None = None) -> int:
    """Return lapsed leases to the pool. Returns how many assignments expired.

    Locks the expiring assignment rows (skipping rows another transaction holds, such
    as a submit in progress, which will settle them itself). Runs inside the caller's
    transaction when there is one.
    """
    now = now or timezone.now()
    # Inside the claim's transaction no savepoint is needed: a failure here fails the claim.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(
            with_row_locks(_LAPSED_LEASES, of="labeling_assignment", skip_locked=True), {"now": datetime_to_db(now)}
        )
        lapsed = cursor.fetchall()
        if not lapsed:
            return 0
        Assignment.objects.filter(pk__in=[pk for pk, _ in lapsed]).update(
            state=AssignmentState.EXPIRED, finished_at=now
        )
        for task_id, count in Counter(task_id for _, task_id in lapsed).items():
            Task.objects.filter(pk=task_id).update(slots_taken=F("slots_taken") - count)
    return len(lapsed)


class _OpenTask(NamedTuple):
    id: int
    campaign_id: int
    prompt: str | list[dict[str, str]]
    is_gold: bool
    lapsed_assignment: int | None
    responses: dict[int, str]  # id to text, in position order


@cache
def _open_task_queries(gold: bool, vendor: str) -> tuple[str, ...]:
    """The statements to try in turn for an open task, each filled with its row locks.

    Skipping the tasks other transactions hold keeps concurrent claims apart. When every open
    task is held that way (near the end of a campaign), the second try waits for them: a held
    task may still have room once its holder commits. SQLite has no row locks: it reads again,
    for when another writer filled the task between the read and the update.
    """
    kind = _GOLD if gold else _REGULAR
    if writes_in_one_statement():
        pick = _OPEN_TASK.format(columns="", **kind, lock="{lock}")
        take = _TAKE_OPEN_TASK.format(
            pick=pick, room="" if gold else _HAS_ROOM, lapsed=_LAPSED_HOLD.format(task="labeling_task")
        )
        return with_row_locks(take, of="t", skip_locked=True), with_row_locks(take, of="t")
    read = _OPEN_TASK.format(columns=", t.prompt, " + _LAPSED_HOLD.format(task="t"), **kind, lock="")
    return (read,) * 3


def _take_task(
    cursor: CursorWrapper, campaign: Campaign, reviewer: AbstractBaseUser, *, gold: bool
) -> _OpenTask | None:
    """Take a slot of the first open task of the kind asked for; None when there is none."""
    params = {"campaign": campaign.pk, "reviewer": reviewer.pk, "gold": gold, "overlap": campaign.overlap}
    tries = _open_task_queries(gold, connection.vendor)
    for number, sql in enumerate(tries, start=1):
        cursor.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            if writes_in_one_statement() and number < len(tries):
                continue  # skipped held tasks: wait for them
            return None
        if writes_in_one_statement():
            task_id, prompt, lapsed_assignment, response_ids, texts = row
            responses = dict(zip(response_ids, texts, strict=True))
        else:
            task_id, prompt, lapsed_assignment = row
            cursor.execute(_TAKE_SLOT if gold else _TAKE_SLOT + _HAS_ROOM, {**params, "task": task_id})
            if not cursor.rowcount:
                continue
            cursor.execute(_TASK_RESPONSES, {"task": task_id})
            responses = dict(cursor.fetchall())
        prompt = field_from_db(Task, "prompt", prompt)
        return _OpenTask(task_id, campaign.pk, prompt, gold, lapsed_assignment, responses)
    return None


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
    expires = now + timedelta(seconds=campaign.lease_seconds)
    with transaction.atomic(), connection.cursor() as cursor:
        assignments_expire(now=now)
        task = None
        if campaign.gold_rate > 0 and rng.random() < campaign.gold_rate:
            task = _take_task(cursor, campaign, reviewer, gold=True)
        task = task or _take_task(cursor, campaign, reviewer, gold=False)
        if task is None:
            # Gold tasks alone never keep a reviewer busy: that would give them away.
            return None
        responses = task.responses
        shown_order = list(responses)
        rng.shuffle(shown_order)
        params = {
            "task": task.id,
            "reviewer": reviewer.pk,
            "assignment": task.lapsed_assignment,
            "shown_order": field_to_db(Assignment, "shown_order", shown_order),
            "now": datetime_to_db(now),
            "expires": datetime_to_db(expires),
        }
        if task.lapsed_assignment is None:
            cursor.execute(_HOLD, params)
            assignment_id = cursor.fetchone()[0]
        else:
            cursor.execute(_HOLD_AGAIN, params)
            assignment_id = task.lapsed_assignment
    assignment = Assignment(
        pk=assignment_id,
        # What the claim read of the task; other fields load on access, as with .only().
        task=instance_from_db(Task, task._asdict()),
        reviewer=reviewer,
        state=AssignmentState.ACTIVE,
        shown_order=shown_order,
        assigned_at=now,
        lease_expires_at=expires,
    )
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
