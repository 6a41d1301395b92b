"""Many reviewers at once: the overlap bound holds and no submission is lost."""

import threading
import uuid
from collections import Counter

import pytest
from django.db import connection, connections, transaction

from labeling.models import Assignment, Judgement, Task
from labeling.services.judgements import judgement_claim_next, judgement_submit, judgement_submit_and_claim_next
from rlhf_platform.roles import Role
from tests.labeling.factories import claim_next, make_campaign, pairwise_rows

TASKS = 300
OVERLAP = 3
REVIEWERS = 8  # below the connection pool size (10), so no thread waits for a connection


def _claim_then_submit(reviewer, campaign) -> int:
    """Claim, then submit, until nothing is left; how many were submitted."""
    count = 0
    while (assignment := claim_next(reviewer=reviewer, campaign=campaign)) is not None:
        assert _submit(reviewer, assignment).created
        count += 1
    return count


def _submit_and_claim_next(reviewer, campaign) -> int:
    """Each submit, then a claim of the next task in a call of its own."""
    count, assignment = 0, claim_next(reviewer=reviewer, campaign=campaign)
    while assignment is not None:
        outcome = _submit(reviewer, assignment)
        assert outcome.created
        count += 1
        claim = judgement_claim_next(reviewer=reviewer, outcome=outcome)
        assignment = claim.assignment if claim else None
    return count


def _submit_with_claim_next(reviewer, campaign) -> int:
    """Each submit holds the next task in the same call, as ``submit/`` with ``claim_next`` does
    (on PostgreSQL in the submit's statement)."""
    count, assignment = 0, claim_next(reviewer=reviewer, campaign=campaign)
    while assignment is not None:
        outcome, claim = judgement_submit_and_claim_next(
            reviewer=reviewer, assignment_id=assignment.pk, **_answer(assignment)
        )
        assert outcome.created
        count += 1
        assignment = claim.assignment if claim else None
    return count


def _submit(reviewer, assignment):
    return judgement_submit(reviewer=reviewer, assignment_id=assignment.pk, **_answer(assignment))


def _answer(assignment) -> dict:
    return {
        "answers": {"preference": {"winner": assignment.shown_order[0], "strength": 1}},
        "client_submission_id": str(uuid.uuid4()),
        "time_spent_ms": 10,
    }


@pytest.mark.parametrize("loop", [_claim_then_submit, _submit_and_claim_next, _submit_with_claim_next])
@pytest.mark.django_db(transaction=True)
def test_it_gives_every_task_exactly_overlap_judgements_under_concurrency(manager, make_user, loop):
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SKIP LOCKED) are a PostgreSQL feature; CI runs this on PostgreSQL")
    reviewers = [make_user(f"load{i}", role=Role.REVIEWER) for i in range(REVIEWERS)]
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(TASKS), overlap=OVERLAP)
    submitted: Counter = Counter()
    failures: list[BaseException] = []
    start = threading.Barrier(REVIEWERS)

    def review(reviewer) -> None:
        try:
            start.wait()
            submitted[reviewer.pk] += loop(reviewer, campaign)
        except BaseException as error:  # reported below, with the thread's own traceback
            failures.append(error)
            raise
        finally:
            connections.close_all()

    threads = [threading.Thread(target=review, args=(r,)) for r in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures, failures

    assert sum(submitted.values()) == TASKS * OVERLAP == Judgement.objects.count()
    per_task = Counter(Judgement.objects.values_list("task_id", flat=True))
    assert set(per_task.values()) == {OVERLAP} and len(per_task) == TASKS
    pairs = Judgement.objects.values_list("task_id", "reviewer_id")
    assert len(set(pairs)) == len(pairs)  # nobody judged a task twice
    assert set(Task.objects.values_list("judgement_count", "slots_taken")) == {(OVERLAP, OVERLAP)}
    assert not Assignment.objects.filter(state="active").exists()
    # Work was shared, not taken by one thread.
    assert len(submitted) == REVIEWERS


@pytest.mark.django_db(transaction=True)
def test_a_claim_waits_for_a_held_task_instead_of_finding_nothing_left(manager, make_user):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are a PostgreSQL feature; CI runs this on PostgreSQL")
    reviewer = make_user("waiting", role=Role.REVIEWER)
    campaign = make_campaign(manager=manager, reviewers=[reviewer], tasks=pairwise_rows(1), overlap=2)
    task = Task.objects.get()
    locked, release = threading.Event(), threading.Event()

    def hold_the_task_row() -> None:
        # Another transaction holds the only open task, as a concurrent claim or submit does.
        try:
            with transaction.atomic():
                Task.objects.select_for_update().get(pk=task.pk)
                locked.set()
                release.wait(timeout=10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_task_row)
    holder.start()
    assert locked.wait(timeout=10)
    threading.Timer(0.3, release.set).start()
    claimed = claim_next(reviewer=reviewer, campaign=campaign)
    holder.join(timeout=10)
    assert claimed is not None and claimed.task_id == task.pk
