"""Simulated reviewers for tests: they claim and answer pairwise tasks through the services, as the API
would have them do, and prefer an answer by the model that wrote it."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from labeling.models import Campaign, Response
from labeling.services.assignment import assignment_claim_next
from labeling.services.judgements import judgement_submit


def bradley_terry_preference(strengths: dict[str, float]) -> Callable[[str, str], float]:
    """The chance that ``first`` beats ``second`` when models have these log-strengths."""
    return lambda first, second: 1.0 / (1.0 + math.exp(strengths[second] - strengths[first]))


def simulate_pairwise_reviews(
    campaign: Campaign,
    reviewers: Sequence[AbstractBaseUser],
    *,
    first_wins: Callable[[str, str], float],
    seed: int,
    tie_rate: float = 0.0,
    both_bad_rate: float = 0.0,
    question: str = "preference",
) -> int:
    """The reviewers take turns until no task is left for any of them; returns how many judgements they made.

    Each answer is "both bad" with chance ``both_bad_rate``, else a tie with chance ``tie_rate``,
    else the answer of model x beats that of model y with chance ``first_wins(x, y)``.
    """
    rng = random.Random(seed)
    models = dict(Response.objects.filter(task__campaign=campaign).values_list("pk", "model_name"))
    made = 0
    active = list(reviewers)
    while active:
        for reviewer in list(active):
            claim = assignment_claim_next(reviewer=reviewer, campaign=campaign, rng=rng)
            if claim is None:
                active.remove(reviewer)
                continue
            left, right = claim.assignment.shown_order
            draw = rng.random()
            answer: dict[str, Any]
            if draw < both_bad_rate:
                answer = {"winner": None, "strength": 0, "both_bad": True}
            elif draw < both_bad_rate + tie_rate:
                answer = {"winner": None, "strength": 0}
            else:
                left_wins = rng.random() < first_wins(models[left], models[right])
                answer = {"winner": left if left_wins else right, "strength": 1}
            judgement_submit(
                reviewer=reviewer,
                assignment_id=claim.assignment.pk,
                answers={question: answer},
                client_submission_id=f"sim-{campaign.pk}-{reviewer.pk}-{made:06d}",
                time_spent_ms=5000,
            )
            made += 1
    return made
