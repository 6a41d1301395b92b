"""The models of a project compared: battles from judgements, the leaderboard page and its API."""

from __future__ import annotations

import itertools
import re

import pytest
from django.urls import reverse

from labeling import selectors
from labeling.models import Task
from labeling.services.campaigns import project_create
from labeling.services.judgements import judgement_submit, judgement_undo_last
from rlhf_platform.roles import Role
from tests.labeling.factories import RANKING_SCHEMA, claim_next, make_campaign
from tests.labeling.simulation import bradley_terry_preference, simulate_pairwise_reviews

pytestmark = pytest.mark.django_db

STRENGTHS = {"tiny-v1": -0.8, "tiny-v2": 0.0, "tiny-v3": 0.8}


def model_rows(pairs, *, start=0, gold_every=0):
    """Pairwise tasks, each an answer of the first model and one of the second; gold ones prefer the first."""
    rows = []
    for index, (first, second) in enumerate(pairs, start=start):
        row = {
            "id": f"t{index}",
            "prompt": f"Question {index}?",
            "responses": [
                {"text": f"{first} says {index}", "model": first},
                {"text": f"{second} says {index}", "model": second},
            ],
        }
        if gold_every and index % gold_every == 0:
            row["gold"] = {"preferred": 0}
        rows.append(row)
    return rows


@pytest.fixture
def three_reviewers(make_user):
    return [make_user(f"sim-{index}", role=Role.REVIEWER) for index in range(3)]


@pytest.fixture
def arena_project(manager, three_reviewers):
    """Three models, every pair of them met 60 times (overlap 3: 540 judgements), by reviewers who
    prefer answers by the Bradley-Terry model of ``STRENGTHS``."""
    project = project_create(name="Assistant models", created_by=manager)
    pairs = [pair for pair in itertools.combinations(STRENGTHS, 2) for _ in range(60)]
    campaign = make_campaign(
        manager=manager, reviewers=three_reviewers, tasks=model_rows(pairs), project=project, overlap=3
    )
    made = simulate_pairwise_reviews(
        campaign, three_reviewers, first_wins=bradley_terry_preference(STRENGTHS), seed=2026, tie_rate=0.08,
        both_bad_rate=0.04,
    )  # fmt: skip
    assert made == 3 * len(pairs)
    return project


def test_the_leaderboard_orders_three_simulated_models(arena_project):
    board = selectors.project_leaderboard(project=arena_project)
    assert board.models == ["tiny-v3", "tiny-v2", "tiny-v1"]
    assert [row["rank"] for row in board.rows] == [1, 2, 3]
    assert board.battles == 540 and board.groups == 1
    assert [row["n_battles"] for row in board.rows] == [360, 360, 360]
    for row in board.rows:
        assert row["rating_low"] < row["rating"] < row["rating_high"]
    best_against_worst = next(
        cell for cell in board.head_to_head if (cell["model"], cell["opponent"]) == ("tiny-v3", "tiny-v1")
    )
    # P(v3 beats v1) = sigmoid(1.6) = 0.83 among decisive verdicts; ties pull the rate towards 0.5.
    assert 0.7 < best_against_worst["win_rate"] < 0.9


def test_battles_skip_gold_unnamed_same_model_and_retracted_answers(manager, reviewer):
    project = project_create(name="Mixed", created_by=manager)
    rows = model_rows([("m1", "m2")] * 4)
    rows.append(
        {
            "id": "same",
            "prompt": "Same model?",
            "responses": [{"text": "x", "model": "m1"}, {"text": "y", "model": "m1"}],
        }
    )
    rows.append({"id": "anonymous", "prompt": "No names?", "responses": ["x", "y"]})
    campaign = make_campaign(manager=manager, reviewers=[reviewer], tasks=rows, project=project, overlap=1)
    answered = []
    while (assignment := claim_next(reviewer=reviewer, campaign=campaign)) is not None:
        winner = assignment.shown_order[0]
        judgement_submit(
            reviewer=reviewer,
            assignment_id=assignment.pk,
            answers={"preference": {"winner": winner, "strength": 1}},
            client_submission_id=f"answer-{assignment.pk}",
            time_spent_ms=1000,
        )
        answered.append(assignment.task.external_id)
    assert sorted(answered) == sorted(["t0", "t1", "t2", "t3", "same", "anonymous"])
    # Two of them turn out to be gold tasks (a gold task looks like any other to its reviewer).
    Task.objects.filter(campaign=campaign, external_id__in=["t0", "t2"]).update(is_gold=True, gold={"preferred": 0})
    every = selectors.comparisons(campaigns=[campaign], include_gold=True)
    assert len(every) == 6
    assert len(selectors.comparisons(campaigns=[campaign])) == 4
    battles = selectors.project_battles(project=project)
    assert sorted(battles["task_id"].map(dict(campaign.tasks.values_list("pk", "external_id")))) == ["t1", "t3"]
    # An undo retracts the last judgement: it no longer counts.
    judgement_undo_last(reviewer=reviewer, campaign=campaign)
    remaining = selectors.comparisons(campaigns=[campaign], include_gold=True)
    assert len(remaining) == 5


def test_rankings_count_as_every_pair_they_order(manager, reviewer):
    project = project_create(name="Ranked", created_by=manager)
    rows = [
        {
            "id": "r1",
            "prompt": "Rank these",
            "responses": [
                {"text": "a", "model": "alpha"},
                {"text": "b", "model": "beta"},
                {"text": "c", "model": "gamma"},
            ],
        }
    ]
    campaign = make_campaign(manager=manager, reviewers=[reviewer], tasks=rows, project=project, schema=RANKING_SCHEMA)
    assignment = claim_next(reviewer=reviewer, campaign=campaign)
    ids = dict(campaign.tasks.get().responses.values_list("model_name", "pk"))
    judgement_submit(
        reviewer=reviewer,
        assignment_id=assignment.pk,
        answers={"rank": {"order": [[ids["gamma"]], [ids["alpha"], ids["beta"]]]}, "why": "gamma is right"},
        client_submission_id="rank-answer-1",
        time_spent_ms=1000,
    )
    battles = selectors.project_battles(project=project)
    outcome = {
        frozenset((row.model_a, row.model_b)): (row.model_a, row.outcome) for row in battles.itertuples(index=False)
    }
    assert len(battles) == 3
    first, result = outcome[frozenset(("alpha", "beta"))]
    assert result == "tie"
    first, result = outcome[frozenset(("alpha", "gamma"))]
    assert (first, result) in {("alpha", "b"), ("gamma", "a")}


def test_both_bad_counts_apart_whatever_side_it_preferred(manager, reviewer):
    project = project_create(name="Both bad", created_by=manager)
    campaign = make_campaign(
        manager=manager, reviewers=[reviewer], tasks=model_rows([("m1", "m2")]), project=project, overlap=1
    )
    assignment = claim_next(reviewer=reviewer, campaign=campaign)
    judgement_submit(
        reviewer=reviewer,
        assignment_id=assignment.pk,
        answers={"preference": {"winner": assignment.shown_order[0], "strength": 1, "both_bad": True}},
        client_submission_id="both-bad-answer",
        time_spent_ms=1000,
    )
    assert selectors.project_battles(project=project)["outcome"].tolist() == ["both_bad"]
    board = selectors.project_leaderboard(project=project)
    assert [(row["both_bad"], row["rating"]) for row in board.rows] == [(1, None), (1, None)]


# --- the page and the API ----------------------------------------------------------------------------


def test_the_leaderboard_page_ranks_the_models_and_draws_the_matrix(arena_project, manager_client):
    dashboard = manager_client.get(reverse("labeling:manager-dashboard")).content.decode()
    url = reverse("labeling:project-leaderboard", kwargs={"slug": arena_project.slug})
    assert f'href="{url}"' in dashboard

    response = manager_client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    table = page[page.index("<table") : page.index("</table>")]
    assert re.findall(r'data-model="([^"]+)"', table) == ["tiny-v3", "tiny-v2", "tiny-v1"]
    board = response.context["board"]
    assert f"{board.rows[0]['rating']:.0f}" in table
    assert "540 battles" in page
    # The heat map: 3 x 3 cells, the 6 off the diagonal with a win rate and a count.
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count("<rect") == 9
    assert len(re.findall(r'class="heatmap-value[^"]*">\d+%</text>', svg)) == 6
    cell = next(c for c in board.head_to_head if (c["model"], c["opponent"]) == ("tiny-v3", "tiny-v1"))
    assert cell["both_bad"] > 0 and cell["n"] == 180 - cell["both_bad"]
    assert f">n={cell['n']}</text>" in svg
    assert f"tiny-v3 against tiny-v1: {round(100 * cell['win_rate'])}% over {cell['n']}" in svg


def test_an_empty_project_says_how_the_leaderboard_fills(manager, manager_client):
    project = project_create(name="Nothing yet", created_by=manager)
    response = manager_client.get(reverse("labeling:project-leaderboard", kwargs={"slug": project.slug}))
    assert response.status_code == 200
    assert "No battles yet" in response.content.decode() and "<svg" not in response.content.decode()


def test_the_leaderboard_api_gives_ratings_intervals_and_the_matrix(arena_project, api_client, manager):
    api_client.force_authenticate(manager)
    body = api_client.get(f"/api/projects/{arena_project.pk}/leaderboard/").json()
    assert [row["model"] for row in body["models"]] == ["tiny-v3", "tiny-v2", "tiny-v1"]
    top = body["models"][0]
    assert top["rating_low"] < top["rating"] < top["rating_high"] and top["rank"] == 1
    assert body["battles"] == 540 and body["n_bootstrap"] == 1000 and body["confidence"] == 0.95
    assert len(body["head_to_head"]) == 6
    assert {cell["n"] for cell in body["head_to_head"]} == {180 - cell["both_bad"] for cell in body["head_to_head"]}


def test_reviewers_and_strangers_cannot_see_the_leaderboard(manager, reviewer_client, api_client, reviewer):
    project = project_create(name="Secret", created_by=manager)
    assert (
        reviewer_client.get(reverse("labeling:project-leaderboard", kwargs={"slug": project.slug})).status_code == 403
    )
    assert api_client.get(f"/api/projects/{project.pk}/leaderboard/").status_code == 401
    api_client.force_authenticate(reviewer)
    assert api_client.get(f"/api/projects/{project.pk}/leaderboard/").status_code == 403
