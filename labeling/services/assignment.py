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

Locking: on PostgreSQL the claim is one statement, which picks its task with
``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent reviewers take different rows instead
of queueing on the same one; only when every open task is held by another transaction does
it wait for them (``FOR UPDATE``), so that "nothing left" is true. The slot is taken with a
conditional ``UPDATE ... WHERE slots_taken < overlap``, which is what guarantees the overlap
bound. SQLite has no row locks; there the claim is a transaction of several statements, and
write transactions are serialized (``transaction_mode = IMMEDIATE`` in settings), which
gives the same guarantee.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import F
from django.utils import timezone

from labeling.errors import CampaignNotActive, Conflict, LabelingError, NotFound
from labeling.models import Assignment, AssignmentState, Campaign, CampaignStatus, Task
from labeling.rendering import RENDERER_VERSION
from labeling.services.imports import MAX_RESPONSES
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

_random = random.SystemRandom()


# The claim's statements are written in SQL rather than built by the ORM: building them cost
# four times more CPU than PostgreSQL took to run them (benchmarks/labeling_load.py). SQLite
# runs them one by one; PostgreSQL runs the whole claim as one statement built from the same
# pieces (``_CLAIM``).
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
# Regular tasks: a slot must be free, the overlap and the votes a re-queue added
# (``extra_votes``) counting as room; the fullest first. Gold tasks: shown to every reviewer
# once, the least-shown first so every gold item gets used, and only while a regular task is
# open to the reviewer: gold tasks alone would give themselves away. ``slots_taken -
# extra_votes`` is written as the claim index (``task_claim_room``) has it, so that the pick
# seeks to the open tasks instead of reading past the full ones.
_HAS_ROOM = " AND slots_taken - extra_votes < %(overlap)s"
_REGULAR_TASK_LEFT = """
       AND EXISTS (SELECT 1 FROM labeling_task o
                    WHERE o.campaign_id = %(campaign)s AND o.response_count >= 2 AND NOT o.is_gold
                      AND o.slots_taken - o.extra_votes < %(overlap)s
                      AND NOT EXISTS (SELECT 1 FROM labeling_assignment h
                                       WHERE h.task_id = o.id AND h.reviewer_id = %(reviewer)s
                                         AND h.state <> 'expired'))"""
_REGULAR = {"room": " AND t.slots_taken - t.extra_votes < %(overlap)s", "order": "t.slots_taken - t.extra_votes DESC"}
_GOLD = {"room": _REGULAR_TASK_LEFT, "order": "t.slots_taken"}
_TAKE_SLOT = "UPDATE labeling_task SET slots_taken = slots_taken + 1 WHERE id = %(task)s"
_TASK_RESPONSES = """
    SELECT id, text, CASE WHEN rendered_with = %(renderer)s THEN html END
      FROM labeling_response WHERE task_id = %(task)s ORDER BY position
"""
# PostgreSQL: the whole claim in one statement, which is atomic by itself and so needs no
# transaction (no BEGIN and COMMIT round trips). The subquery picks and locks an open task,
# the UPDATE takes its slot, and the assignment is inserted (or the reviewer's lapsed one is
# held again) with the task's responses in the order they will be shown: ranked by a random
# key per response position (``rank``), drawn in Python and sent as an array literal (cheaper to
# send than a list of numbers).
_CLAIM = """taken AS (
        UPDATE labeling_task SET slots_taken = slots_taken + 1
         WHERE id = ({pick}){room}
        RETURNING id, prompt, {lapsed} AS lapsed
    ), shown AS (
        SELECT array_agg(r.id ORDER BY (%(rank_keys)s::bigint[])[r.position + 1], r.id) AS ids,
               array_agg(r.text ORDER BY (%(rank_keys)s::bigint[])[r.position + 1], r.id) AS texts,
               array_agg(CASE WHEN r.rendered_with = %(renderer)s THEN r.html END
                         ORDER BY (%(rank_keys)s::bigint[])[r.position + 1], r.id) AS htmls
          FROM labeling_response r
         WHERE r.task_id = (SELECT id FROM taken)
    ), held AS (
        INSERT INTO labeling_assignment
               (task_id, reviewer_id, state, shown_order, assigned_at, lease_expires_at, finished_at, skip_reason)
        SELECT taken.id, %(reviewer)s, 'active', to_jsonb(shown.ids), %(now)s, %(expires)s, NULL, ''
          FROM taken, shown
         WHERE taken.lapsed IS NULL
        RETURNING id
    ), held_again AS (
        UPDATE labeling_assignment a
           SET state = 'active', shown_order = to_jsonb(shown.ids), assigned_at = %(now)s,
               lease_expires_at = %(expires)s, finished_at = NULL, skip_reason = ''
          FROM taken, shown
         WHERE a.id = taken.lapsed
        RETURNING a.id
    )"""
# What a claim returns: the task, the reviewer's lapsed assignment of it if any, the responses
# in their shown order (text, and HTML where stored by the current renderer), and the
# assignment now held.
_CLAIMED = """taken.id, taken.prompt, taken.lapsed, shown.ids, shown.texts, shown.htmls,
           COALESCE((SELECT id FROM held), (SELECT id FROM held_again))
      FROM taken, shown"""
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
    # Its own transaction when called alone (as a claim does); inside a caller's transaction no
    # savepoint is needed, as a failure here fails the caller too.
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


class _SweepSchedule:
    """When a claim should return lapsed leases to the pool: at most once per ``seconds`` per
    process, as a sweep is a statement every claim would otherwise pay for. A claim that finds
    nothing sweeps anyway (``assignment_claim_next``), so "nothing left" stays true."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._next_at = 0.0

    def due(self) -> bool:
        # Two threads can both find it due; that costs one more sweep, nothing else.
        now = time.monotonic()
        if now < self._next_at:
            return False
        self._next_at = now + self.seconds
        return True


lease_sweeps = _SweepSchedule(seconds=1.0)


class _Held(NamedTuple):
    """A task just held for the reviewer, as far as the claim read it."""

    assignment_id: int
    task_id: int
    is_gold: bool
    prompt: str | list[dict[str, str]]
    shown_order: list[int]
    responses: dict[int, str]  # id to text
    stored_html: dict[int, str]  # id to HTML, for the responses stored by the current renderer
    reused: bool  # the reviewer's own lapsed assignment, taken up again


@cache
def _open_task_queries(gold: bool, in_one_statement: bool) -> tuple[str, ...]:
    """The statements to try in turn for an open task, each filled with its row locks.

    PostgreSQL: the one-statement claim, first skipping the tasks other transactions hold,
    which keeps concurrent claims apart; when every open task is held that way (near the end
    of a campaign), the second try waits for them, as a held task may still have room once
    its holder commits. SQLite has no row locks: it reads again, for when another writer
    filled the task between the read and the update.
    """
    if in_one_statement:
        claim = "WITH " + _claim_ctes(gold) + " SELECT " + _CLAIMED
        return with_row_locks(claim, of="t", skip_locked=True), with_row_locks(claim, of="t")
    kind = _GOLD if gold else _REGULAR
    read = _OPEN_TASK.format(columns=", t.prompt, " + _LAPSED_HOLD.format(task="t"), **kind, lock="")
    return (read,) * 3


# The CTE that a statement claiming after its own write (``claim_after_write``) must name the
# write it makes first; it returns a row when that write happened.
BEFORE_CLAIM = "before_claim"
_AFTER_WRITE = f" AND EXISTS (SELECT 1 FROM {BEFORE_CLAIM})"  # noqa: S608 (a constant)


def _claim_ctes(gold: bool, *, after_write: bool = False) -> str:
    """The claim's common table expressions (``_CLAIM``), with ``{lock}`` left to fill.

    ``after_write``: the task is picked only once the same statement's ``BEFORE_CLAIM`` CTE
    ran and returned a row. The pick reads it, which makes PostgreSQL run it first.
    """
    kind = _GOLD if gold else _REGULAR
    gate = _AFTER_WRITE if after_write else ""
    return _CLAIM.format(
        pick=_OPEN_TASK.format(columns="", order=kind["order"], room=kind["room"] + gate, lock="{lock}"),
        room="" if gold else _HAS_ROOM,
        lapsed=_LAPSED_HOLD.format(task="labeling_task"),
    )


def _hold_in_one_statement(cursor: CursorWrapper, params: dict[str, Any]) -> _Held | None:
    for sql in _open_task_queries(params["gold"], in_one_statement=True):
        execute(cursor, sql, params)
        row = cursor.fetchone()
        if row is not None:
            return _held_from_row(row, gold=params["gold"])
    return None


def _held_from_row(row: tuple[Any, ...], *, gold: bool) -> _Held:
    """A task held by the one-statement claim, from its ``_CLAIMED`` columns."""
    task_id, prompt, lapsed_assignment, shown_order, texts, htmls, assignment_id = row
    responses = dict(zip(shown_order, texts, strict=True))
    stored_html = {pk: html for pk, html in zip(shown_order, htmls, strict=True) if html is not None}
    reused = lapsed_assignment is not None
    return _Held(assignment_id, task_id, gold, prompt, shown_order, responses, stored_html, reused)


def _hold_step_by_step(cursor: CursorWrapper, params: dict[str, Any]) -> _Held | None:
    """The claim as separate statements, in the caller's transaction (SQLite)."""
    take_slot = _TAKE_SLOT if params["gold"] else _TAKE_SLOT + _HAS_ROOM
    for sql in _open_task_queries(params["gold"], in_one_statement=False):
        execute(cursor, sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        task_id, prompt, lapsed_assignment = row
        execute(cursor, take_slot, {**params, "task": task_id})
        if cursor.rowcount:
            break
    else:
        return None
    execute(cursor, _TASK_RESPONSES, {**params, "task": task_id})
    rows = cursor.fetchall()
    responses = {pk: text for pk, text, _ in rows}
    stored_html = {pk: html for pk, _, html in rows if html is not None}
    shown_order = [pk for _, pk in sorted(zip(params["rank"], responses, strict=False))]
    hold = {**params, "task": task_id, "assignment": lapsed_assignment}
    hold["shown_order"] = field_to_db(Assignment, "shown_order", shown_order)
    if lapsed_assignment is None:
        execute(cursor, _HOLD, hold)
        assignment_id = cursor.fetchone()[0]
    else:
        execute(cursor, _HOLD_AGAIN, hold)
        assignment_id = lapsed_assignment
    reused = lapsed_assignment is not None
    return _Held(assignment_id, task_id, params["gold"], prompt, shown_order, responses, stored_html, reused)


@dataclass(frozen=True)
class Claim:
    assignment: Assignment
    # The task's responses as (id, text), so the payload needs no second read.
    responses: dict[int, str]
    reused: bool  # the reviewer's own lapsed assignment, taken up again
    # Their HTML where stored by the current renderer; the payload renders the others.
    stored_html: dict[int, str] = field(default_factory=dict)


def _check_hands_out_tasks(campaign: Campaign) -> None:
    if campaign.status != CampaignStatus.ACTIVE:
        raise CampaignNotActive(f"The campaign is {campaign.get_status_display().lower()}; it hands out no tasks.")


def assignment_claim_next(
    *, reviewer: AbstractBaseUser, campaign: Campaign, rng: random.Random | None = None
) -> Claim | None:
    """Give ``reviewer`` a new task of ``campaign`` and hold it for the campaign's lease.

    Returns None when nothing is left for this reviewer. The caller has checked that the
    reviewer belongs to the campaign (``selectors.campaign_for_reviewer``). Lapsed leases are
    returned to the pool first when a sweep is due (``lease_sweeps``), and always before
    answering that nothing is left.
    """
    rng = rng or _random
    _check_hands_out_tasks(campaign)
    now = timezone.now()
    swept = lease_sweeps.due()
    if swept:
        assignments_expire(now=now)
    claim = _claim(reviewer, campaign, rng, now)
    if claim is None and not swept and assignments_expire(now=now):
        claim = _claim(reviewer, campaign, rng, now)
    return claim


@dataclass(frozen=True)
class _ClaimTry:
    """One claim of the reviewer's next task: who, when, and the statement parameters."""

    reviewer: AbstractBaseUser
    campaign: Campaign
    now: datetime
    expires: datetime
    params: dict[str, Any]  # with "gold": whether this try is for a gold task

    @property
    def gold(self) -> bool:
        return self.params["gold"]


def _claim_try(reviewer: AbstractBaseUser, campaign: Campaign, rng: random.Random, now: datetime) -> _ClaimTry:
    expires = now + timedelta(seconds=campaign.lease_seconds)
    gold = campaign.gold_rate > 0 and rng.random() < campaign.gold_rate
    # Responses are shown in the order of a random key per position: 32 random bits each, all
    # drawn at once (a shuffle would ask the system's random source once per position).
    keys = rng.getrandbits(32 * MAX_RESPONSES)
    rank = [(keys >> (32 * position)) & 0xFFFFFFFF for position in range(MAX_RESPONSES)]
    params = {
        "campaign": campaign.pk,
        "reviewer": reviewer.pk,
        "overlap": campaign.overlap,
        "rank": rank,
        "rank_keys": "{" + ",".join(map(str, rank)) + "}",
        "now": datetime_to_db(now),
        "expires": datetime_to_db(expires),
        "renderer": RENDERER_VERSION,
        "gold": gold,
    }
    return _ClaimTry(reviewer, campaign, now, expires, params)


def _claim(reviewer: AbstractBaseUser, campaign: Campaign, rng: random.Random, now: datetime) -> Claim | None:
    claim_try = _claim_try(reviewer, campaign, rng, now)
    params = claim_try.params
    if writes_in_one_statement():
        hold, atomic = _hold_in_one_statement, one_statement_atomic()
    else:
        hold, atomic = _hold_step_by_step, transaction.atomic()
    with atomic, connection.cursor() as cursor:
        held = hold(cursor, params) if claim_try.gold else None
        held = held or hold(cursor, {**params, "gold": False})
    return None if held is None else _claimed(claim_try, held)


def _claimed(claim_try: _ClaimTry, held: _Held) -> Claim:
    task = instance_from_db(
        Task,
        {
            "id": held.task_id,
            "campaign_id": claim_try.campaign.pk,
            "prompt": field_from_db(Task, "prompt", held.prompt),
            "is_gold": held.is_gold,
        },
    )
    assignment = Assignment(
        pk=held.assignment_id,
        # What the claim read of the task; other fields load on access, as with .only().
        task=task,
        reviewer=claim_try.reviewer,
        state=AssignmentState.ACTIVE,
        shown_order=held.shown_order,
        assigned_at=claim_try.now,
        lease_expires_at=claim_try.expires,
    )
    return Claim(assignment=assignment, responses=held.responses, reused=held.reused, stored_html=held.stored_html)


class ClaimAfterWrite(NamedTuple):
    """A claim to run inside a caller's data-modifying statement (PostgreSQL), after its write.

    The caller's statement is ``WITH <its CTEs>, <ctes> SELECT ..., <columns>``, and one of
    its CTEs is ``BEFORE_CLAIM``: the claim picks a task only once that CTE has returned a
    row. This is the claim's first try only: when ``columns`` come back empty, claim with
    ``assignment_claim_next``, which tries everything.
    """

    ctes: str
    claim_try: _ClaimTry
    columns: str = _CLAIMED

    @property
    def params(self) -> dict[str, Any]:
        return self.claim_try.params

    def claimed(self, row: tuple[Any, ...]) -> Claim | None:
        """The claim from ``columns`` as returned (all NULL: none)."""
        if row[0] is None:
            return None
        return _claimed(self.claim_try, _held_from_row(row, gold=self.claim_try.gold))


def claim_after_write(
    *, reviewer: AbstractBaseUser, campaign: Campaign, now: datetime, rng: random.Random | None = None
) -> ClaimAfterWrite:
    """Plan claiming ``reviewer``'s next task in a statement that makes a write first (``BEFORE_CLAIM``).

    A task is picked only after that write, so a statement that waits on a row lock waits
    there, before it holds a task: concurrent statements then cannot wait on each other's
    picks, and the pick itself skips locked tasks. Sweeps lapsed leases first when due.
    """
    _check_hands_out_tasks(campaign)
    if lease_sweeps.due():
        assignments_expire(now=now)
    claim_try = _claim_try(reviewer, campaign, rng or _random, now)
    return ClaimAfterWrite(_claim_after_write_ctes(claim_try.gold), claim_try)


@cache
def _claim_after_write_ctes(gold: bool) -> str:
    return with_row_locks(_claim_ctes(gold, after_write=True), of="t", skip_locked=True)


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
            Task.objects.filter(pk=assignment.task_id).update(
                slots_taken=F("slots_taken") - 1, skip_count=F("skip_count") + 1
            )
        else:
            Task.objects.filter(pk=assignment.task_id).update(skip_count=F("skip_count") + 1)
        assignment.state = AssignmentState.SKIPPED
        assignment.skip_reason = reason[:500]
        assignment.finished_at = now
        assignment.save(update_fields=["state", "skip_reason", "finished_at"])
    return assignment
