"""The review queue: per campaign, how many tasks are left for this reviewer; campaigns with none are hidden.

"Left for this reviewer" is what the assignment rules could still give them: regular tasks with a
free slot under the overlap that they have not judged, skipped or held. Gold tasks do not count:
they are only served beside regular ones.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.models import Assignment, CampaignStatus
from labeling.selectors import review_queue
from labeling.services.assignment import assignment_skip
from labeling.services.judgements import judgement_submit
from rlhf_platform.roles import Role
from tests.labeling.factories import claim_next, make_campaign, pairwise_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def others(make_user):
    return [make_user(f"other-{i}", role=Role.REVIEWER) for i in range(3)]


def submit(reviewer, assignment) -> None:
    judgement_submit(
        reviewer=reviewer,
        assignment_id=assignment.pk,
        answers={"preference": {"winner": assignment.shown_order[0], "strength": 1}},
        client_submission_id=str(uuid.uuid4()),
        time_spent_ms=1200,
    )


def left_for(reviewer) -> dict[str, tuple[int, int]]:
    return {c.name: (c.tasks_left, c.tasks_held) for c in review_queue(reviewer=reviewer).campaigns}


def test_it_counts_what_each_campaign_could_still_give_the_reviewer(manager, reviewer, others):
    make_campaign(manager=manager, reviewers=[reviewer], tasks=pairwise_rows(3), overlap=1, name="Open")
    taken = make_campaign(
        manager=manager, reviewers=[reviewer, others[0]], tasks=pairwise_rows(2), overlap=1, name="Taken"
    )
    make_campaign(manager=manager, reviewers=[reviewer], tasks=pairwise_rows(2, gold_every=1), name="Only gold")
    make_campaign(
        manager=manager, reviewers=[reviewer], tasks=pairwise_rows(2), name="Draft", status=CampaignStatus.DRAFT
    )
    make_campaign(manager=manager, reviewers=[others[1]], tasks=pairwise_rows(2), name="Not in their pool")
    while claim_next(reviewer=others[0], campaign=taken) is not None:
        pass

    queue = review_queue(reviewer=reviewer)
    assert {c.name: c.tasks_left for c in queue.campaigns} == {"Open": 3}
    assert [c.name for c in queue.finished] == ["Only gold", "Taken"]


def test_the_count_matches_the_tasks_the_reviewer_is_then_given(manager, reviewer, others):
    rows = pairwise_rows(10, gold_every=5)  # 8 regular tasks, 2 gold
    campaign = make_campaign(manager=manager, reviewers=[reviewer, *others], tasks=rows, overlap=2, gold_rate=0.0)
    for _ in range(3):
        submit(others[0], claim_next(reviewer=others[0], campaign=campaign))
    claim_next(reviewer=others[1], campaign=campaign)  # held now: takes a slot
    for _ in range(2):
        claim_next(reviewer=others[1], campaign=campaign)
    # A hold whose lease lapsed gives its slot back.
    lapsed = claim_next(reviewer=others[2], campaign=campaign)
    Assignment.objects.filter(pk=lapsed.pk).update(lease_expires_at=timezone.now() - timedelta(minutes=1))
    # Tasks the reviewer judged or skipped are not theirs to take again.
    submit(reviewer, claim_next(reviewer=reviewer, campaign=campaign))
    assignment_skip(
        reviewer=reviewer, assignment_id=claim_next(reviewer=reviewer, campaign=campaign).pk, reason="unsure"
    )

    expected = left_for(reviewer)[campaign.name][0]
    given = 0
    while (assignment := claim_next(reviewer=reviewer, campaign=campaign)) is not None:
        assert not assignment.task.is_gold
        given += 1
    assert given == expected > 0
    # Everything left is now held by the reviewer: the campaign stays, to resume.
    assert left_for(reviewer)[campaign.name] == (0, given)


def test_a_campaign_whose_tasks_the_reviewer_finished_leaves_the_queue(manager, reviewer):
    campaign = make_campaign(manager=manager, reviewers=[reviewer], tasks=pairwise_rows(2), overlap=3)
    assert left_for(reviewer) == {campaign.name: (2, 0)}
    while (assignment := claim_next(reviewer=reviewer, campaign=campaign)) is not None:
        submit(reviewer, assignment)
    queue = review_queue(reviewer=reviewer)
    assert queue.campaigns == [] and [c.name for c in queue.finished] == [campaign.name]


def test_the_queue_is_read_in_one_query_however_many_campaigns(manager, reviewer, django_assert_num_queries):
    for index in range(4):
        make_campaign(manager=manager, reviewers=[reviewer], tasks=pairwise_rows(2), name=f"Campaign {index}")
    with django_assert_num_queries(1):
        queue = review_queue(reviewer=reviewer)
        assert [c.project.name for c in queue.campaigns] == ["Assistant quality"] * 4


def test_the_page_shows_the_count_and_hides_campaigns_with_nothing_left(manager, reviewer, reviewer_client, others):
    make_campaign(manager=manager, reviewers=[reviewer], tasks=pairwise_rows(3), overlap=1, name="Open")
    one = make_campaign(manager=manager, reviewers=[reviewer], tasks=pairwise_rows(1), overlap=1, name="Almost done")
    taken = make_campaign(
        manager=manager, reviewers=[reviewer, others[0]], tasks=pairwise_rows(1), overlap=1, name="Taken"
    )
    claim_next(reviewer=others[0], campaign=taken)
    claim_next(reviewer=reviewer, campaign=one)

    page = reviewer_client.get(reverse("labeling:reviewer-queue")).content.decode()
    assert '<strong class="num">3</strong> tasks left for you' in page
    assert "1 in progress" in page
    assert reverse("labeling:workspace", args=[taken.slug]) not in page
    assert "Nothing left for you in Taken." in page
