"""Demo data for `make demo`: a project whose campaigns show the product at once.

- Two small hand-written campaigns (``labeling/demo/*.jsonl``), a pairwise and a ranking one, ready
  to review.
- One realistic campaign (``REALISTIC_CAMPAIGN``): a few hundred pairwise tasks, generated from the
  templates in ``labeling/demo/realistic_templates.json`` with a seeded RNG, gold tasks among them,
  and most of it already judged by simulated reviewers through the same claim and submit services
  the API uses. Three of them are careful, one careless (fast and near random) and one
  position-biased (mostly picks the response shown first), so the campaign's Quality page has
  agreement to show and outliers to flag, and the Datasets page can build a snapshot of hundreds
  of pairs. Some tasks stay open for the demo reviewers.

Everything is deterministic (seeded) and idempotent: a campaign that exists is left as it is.
"""

from __future__ import annotations

import io
import json
import math
import random
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.utils import timezone

from labeling.models import Assignment, Campaign, CampaignStatus, Judgement, Project, Response
from labeling.services.assignment import assignment_claim_next
from labeling.services.campaigns import campaign_create, campaign_set_status, project_create
from labeling.services.imports import tasks_import, tasks_import_file
from labeling.services.judgements import judgement_submit
from rlhf_platform.roles import Role

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
DEMO_PROJECT_SLUG = "demo-assistant"
PAIRWISE_QUESTIONS = {
    "questions": [
        {"id": "preference", "type": "pairwise", "allow_both_bad": True},
        {"id": "flags", "type": "flags"},
        {"id": "rationale", "type": "text", "label": "Why?"},
    ]
}
DEMO_CAMPAIGNS = (
    {
        "slug": "demo-pairwise",
        "name": "Which answer is better?",
        "file": "pairwise_tasks.jsonl",
        "overlap": 2,
        "gold_rate": 0.1,
        "question_schema": PAIRWISE_QUESTIONS,
    },
    {
        "slug": "demo-ranking",
        "name": "Rank four answers",
        "file": "ranking_tasks.jsonl",
        "overlap": 2,
        "gold_rate": 0.0,
        "question_schema": {
            "questions": [
                {"id": "ranking", "type": "ranking", "allow_ties": True},
                {
                    "id": "quality",
                    "type": "likert",
                    "aspects": ["helpfulness", "honesty"],
                    "scale": {"min": 1, "max": 5, "labels": {"1": "Poor", "5": "Excellent"}},
                    "required": False,
                },
                {"id": "rewrite", "type": "rewrite", "label": "Improve the best answer"},
            ]
        },
    },
)


@dataclass(frozen=True)
class RealisticCampaign:
    slug: str
    name: str
    regular_tasks: int  # tasks to label, each wanted ``overlap`` times
    gold_tasks: int  # tasks with a known answer, mixed in at ``gold_rate``
    overlap: int
    gold_rate: float
    # Turns of the simulated reviewers, one claim and submit each: short of regular_tasks * overlap
    # (plus the gold ones mixed in), so that the tasks handed out last stay open for the demo reviewers.
    simulated_claims: int
    # Days the simulated judgements are spread over (back-dated), for the agreement-over-time plot.
    days: int
    seed: int


REALISTIC_CAMPAIGN = RealisticCampaign(
    slug="demo-answers",
    name="Assistant answers, round 1",
    regular_tasks=300,
    gold_tasks=40,
    overlap=3,
    gold_rate=0.15,
    simulated_claims=800,
    days=6,
    seed=2024,
)


@dataclass(frozen=True)
class SimulatedReviewer:
    """How one simulated reviewer judges: the chances are per task, the times per judgement."""

    username: str
    full_name: str
    share: float  # relative share of the claims this reviewer makes
    left_bias: float  # chance of picking the response shown first without reading
    accuracy: float  # otherwise, chance of preferring the better response (0.5: a coin toss)
    tie_rate: float  # chance of calling a tie when judging on merit
    seconds: float  # median seconds per task, before reading time
    seconds_per_1000_chars: float  # reading time; 0 for someone who does not read
    rationale_rate: float  # chance of writing why


_CAREFUL = {"left_bias": 0.0, "rationale_rate": 0.2}
SIMULATED_REVIEWERS = (
    SimulatedReviewer(
        "sim-careful-1", "Simulated careful reviewer 1", share=1.0, accuracy=0.93, tie_rate=0.03,
        seconds=14, seconds_per_1000_chars=22, **{**_CAREFUL, "rationale_rate": 0.35},
    ),
    SimulatedReviewer(
        "sim-careful-2", "Simulated careful reviewer 2", share=1.0, accuracy=0.9, tie_rate=0.04,
        seconds=18, seconds_per_1000_chars=26, **_CAREFUL,
    ),
    SimulatedReviewer(
        "sim-careful-3", "Simulated careful reviewer 3", share=0.9, accuracy=0.91, tie_rate=0.02,
        seconds=11, seconds_per_1000_chars=18, **{**_CAREFUL, "rationale_rate": 0.1},
    ),
    # Clicks without reading: a coin toss in about 2 seconds.
    SimulatedReviewer(
        "sim-careless", "Simulated careless reviewer", share=0.55, left_bias=0.0, accuracy=0.5, tie_rate=0.0,
        seconds=2.2, seconds_per_1000_chars=0, rationale_rate=0.0,
    ),
    # Picks the response shown first four times in five; reads and judges fairly the fifth time.
    SimulatedReviewer(
        "sim-position-biased", "Simulated position-biased reviewer", share=0.55, left_bias=0.8, accuracy=0.9,
        tie_rate=0.0, seconds=9, seconds_per_1000_chars=10, rationale_rate=0.0,
    ),
)  # fmt: skip
# Per flaw of the worse response, the chance that a reviewer who picked the better one says "much better".
_MUCH_BETTER = {"wrong_fact": 0.65, "rude": 0.5, "unhelpful": 0.6, "too_short": 0.3}
_RATIONALES = {
    "wrong_fact": ("The other answer gets the facts wrong.", "One of them is simply incorrect."),
    "unhelpful": ("Only one of them actually answers the question.", "The other one dodges the question."),
    "too_short": ("The other answer stops mid-sentence.", "One answer is cut off."),
    "rude": ("Same content, but one of them is condescending.", "The tone of the other one is rude."),
}


def demo_data_ensure(*, manager_username: str = "manager") -> list[Campaign]:
    """Create the demo project and campaigns if missing; the demo reviewers join every pool.

    One transaction: a failed seed leaves nothing half-made behind, and a second run finds every
    campaign and changes nothing but the pools (demo reviewers added since).
    """
    with transaction.atomic():
        manager = get_user_model().objects.get(username=manager_username)
        project = Project.objects.filter(slug=DEMO_PROJECT_SLUG).first() or project_create(
            name="Demo: assistant quality", slug=DEMO_PROJECT_SLUG, created_by=manager
        )
        simulated = [reviewer.username for reviewer in SIMULATED_REVIEWERS]
        reviewers = list(
            get_user_model()
            .objects.filter(groups__name=Role.REVIEWER, is_active=True)
            .exclude(username__in=simulated)
            .distinct()
        )
        guidelines = (DEMO_DIR / "guidelines.md").read_text()
        campaigns = []
        for spec in DEMO_CAMPAIGNS:
            campaign = Campaign.objects.filter(slug=spec["slug"]).first()
            if campaign is None:
                campaign = campaign_create(
                    project=project,
                    created_by=manager,
                    slug=spec["slug"],
                    name=spec["name"],
                    question_schema=spec["question_schema"],
                    guidelines=guidelines,
                    overlap=spec["overlap"],
                    gold_rate=spec["gold_rate"],
                )
                tasks_import_file(campaign=campaign, path=DEMO_DIR / spec["file"])
                campaign = campaign_set_status(campaign=campaign, status=CampaignStatus.ACTIVE)
            campaign.reviewers.add(*reviewers)
            campaigns.append(campaign)
        campaign = Campaign.objects.filter(slug=REALISTIC_CAMPAIGN.slug).first()
        if campaign is None:
            campaign = _realistic_campaign_create(project, manager, guidelines)
        campaign.reviewers.add(*reviewers)
        campaigns.append(campaign)
    return campaigns


def _realistic_campaign_create(project: Project, manager: AbstractBaseUser, guidelines: str) -> Campaign:
    spec = REALISTIC_CAMPAIGN
    campaign = campaign_create(
        project=project,
        created_by=manager,
        slug=spec.slug,
        name=spec.name,
        question_schema=PAIRWISE_QUESTIONS,
        guidelines=guidelines,
        overlap=spec.overlap,
        gold_rate=spec.gold_rate,
    )
    rows = realistic_task_rows(regular=spec.regular_tasks, gold=spec.gold_tasks, seed=spec.seed)
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    tasks_import(campaign=campaign, stream=io.BytesIO(data), file_format="jsonl", size=len(data))
    campaign = campaign_set_status(campaign=campaign, status=CampaignStatus.ACTIVE)
    users = [_simulated_user(reviewer) for reviewer in SIMULATED_REVIEWERS]
    campaign.reviewers.add(*users)
    _simulate_reviewing(campaign, users)
    return campaign


def _simulated_user(reviewer: SimulatedReviewer) -> AbstractBaseUser:
    """The reviewer's account, created if missing: a real reviewer nobody can sign in as."""
    user, created = get_user_model().objects.get_or_create(
        username=reviewer.username, defaults={"first_name": reviewer.full_name}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get_or_create(name=Role.REVIEWER)[0])
    return user


# --- The simulated reviewers at work -------------------------------------------------------------


def _simulate_reviewing(campaign: Campaign, users: list[AbstractBaseUser]) -> None:
    """The simulated reviewers claim and judge tasks in turn, as the API would have them do.

    Who claims next is drawn by ``share``; claims are seeded too (gold or not, shown order), so two
    seeds of an empty database give the same judgements.
    """
    spec = REALISTIC_CAMPAIGN
    rng = random.Random(spec.seed)  # noqa: S311 - reproducible demo data, not a secret
    claim_rng = random.Random(spec.seed + 1)  # noqa: S311 - as above
    truth = _response_truth(campaign)
    shares = [reviewer.share for reviewer in SIMULATED_REVIEWERS]
    done_with = set()
    for turn in range(spec.simulated_claims):
        index = rng.choices(range(len(users)), weights=shares)[0]
        if index in done_with:
            continue
        user, reviewer = users[index], SIMULATED_REVIEWERS[index]
        claim = assignment_claim_next(reviewer=user, campaign=campaign, rng=claim_rng)
        if claim is None:
            done_with.add(index)
            continue
        shown_order = claim.assignment.shown_order
        answers = simulated_answers(reviewer, shown_order=shown_order, truth=truth, rng=rng)
        characters = sum(len(text) for text in claim.responses.values())
        judgement_submit(
            reviewer=user,
            assignment_id=claim.assignment.pk,
            answers=answers,
            client_submission_id=f"demo-{campaign.slug}-{turn:05d}",
            time_spent_ms=simulated_time_ms(reviewer, characters=characters, rng=rng),
        )
    _spread_over_days(campaign, days=spec.days)


@dataclass(frozen=True)
class ResponseTruth:
    """What the generator knows of a task's two responses: which is better, and what is wrong with the other."""

    better: int
    worse: int
    flaw: str


def _response_truth(campaign: Campaign) -> dict[int, ResponseTruth]:
    """Per response id, the truth of its task, from the response metadata the generator wrote."""
    by_task: dict[int, dict[str, tuple[int, str]]] = {}
    for pk, task_id, meta in Response.objects.filter(task__campaign=campaign).values_list("pk", "task_id", "meta"):
        by_task.setdefault(task_id, {})[meta["demo_quality"]] = (pk, meta.get("demo_flaw", ""))
    truth = {}
    for pair in by_task.values():
        (better, _), (worse, flaw) = pair["better"], pair["worse"]
        truth[better] = truth[worse] = ResponseTruth(better, worse, flaw)
    return truth


def simulated_answers(
    reviewer: SimulatedReviewer, *, shown_order: list[int], truth: dict[int, ResponseTruth], rng: random.Random
) -> dict[str, Any]:
    """The reviewer's answers to ``PAIRWISE_QUESTIONS`` for a task shown in ``shown_order``."""
    task = truth[shown_order[0]]
    if rng.random() < reviewer.left_bias:
        winner = shown_order[0]
    elif rng.random() < reviewer.tie_rate:
        return {"preference": {"winner": None, "strength": 0}}
    else:
        winner = task.better if rng.random() < reviewer.accuracy else task.worse
    if reviewer.accuracy <= 0.5:  # picks without reading, so the strength is a guess too
        strength = rng.choice((1, 2))
    else:
        strength = 2 if winner == task.better and rng.random() < _MUCH_BETTER[task.flaw] else 1
    answers: dict[str, Any] = {"preference": {"winner": winner, "strength": strength}}
    if winner == task.better and rng.random() < reviewer.rationale_rate:
        answers["rationale"] = rng.choice(_RATIONALES[task.flaw])
    return answers


def simulated_time_ms(reviewer: SimulatedReviewer, *, characters: int, rng: random.Random) -> int:
    """Milliseconds from display to submit: a median plus reading time, log-normally spread."""
    seconds = reviewer.seconds + reviewer.seconds_per_1000_chars * characters / 1000
    return int(1000 * seconds * rng.lognormvariate(0, 0.35))


def _spread_over_days(campaign: Campaign, *, days: int) -> None:
    """Back-date the simulated judgements (and their assignments) over the past ``days`` days.

    The services stamp every judgement with the time of the submit, so the whole seed would sit in
    one second and the Quality page's agreement over time would be a single point. Spread in
    submission order, in working hours (9:00 to 18:00 UTC), ending yesterday; the judgements'
    answers, order and timings stay as submitted.
    """
    judgements = list(Judgement.objects.filter(task__campaign=campaign).select_related("assignment").order_by("pk"))
    if not judgements:
        return
    first_day = (timezone.now() - timedelta(days=days)).replace(hour=9, minute=0, second=0, microsecond=0)
    per_day = math.ceil(len(judgements) / days)
    working_seconds = 9 * 3600
    assignments = []
    for index, judgement in enumerate(judgements):
        day, slot = divmod(index, per_day)
        submitted = first_day + timedelta(days=day, seconds=working_seconds * (slot + 1) / (per_day + 1))
        judgement.submitted_at = submitted
        assignment = judgement.assignment
        assignment.assigned_at = submitted - timedelta(milliseconds=judgement.time_spent_ms)
        assignment.lease_expires_at = assignment.assigned_at + timedelta(seconds=campaign.lease_seconds)
        assignment.finished_at = submitted
        assignments.append(assignment)
    Judgement.objects.bulk_update(judgements, ["submitted_at"], batch_size=500)
    Assignment.objects.bulk_update(assignments, ["assigned_at", "lease_expires_at", "finished_at"], batch_size=300)


# --- Generating the tasks ------------------------------------------------------------------------

# Flawed responses, by kind: a wrong answer, a non-answer, a cut-off answer, a rude answer.
_FLAW_WEIGHTS = {"wrong_fact": 0.45, "unhelpful": 0.2, "too_short": 0.2, "rude": 0.15}
# The better answer comes from the newer model most of the time, so the models' A/B table has a story.
_MODELS = ("smollm2-135m-dpo", "smollm2-135m-sft")
_NEWER_MODEL_WINS = 0.7


@cache
def _templates() -> dict[str, Any]:
    return json.loads((DEMO_DIR / "realistic_templates.json").read_text())


def realistic_task_rows(*, regular: int, gold: int, seed: int) -> list[dict[str, Any]]:
    """Import rows (DESIGN.md's JSONL format) of pairwise tasks: a prompt, a good and a flawed response.

    The gold tasks come first, with the better response's position as their gold answer. Which
    response is better, and the flaw of the other, are in the responses' ``meta``
    (``demo_quality``, ``demo_flaw``), which reviewers never see.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not a secret
    rows = []
    for index in range(gold + regular):
        prompt, good, flawed, flaw, family = _task_texts(rng)
        better_first = rng.random() < 0.5
        newer_is_better = rng.random() < _NEWER_MODEL_WINS
        good_model, flawed_model = _MODELS if newer_is_better else reversed(_MODELS)
        good_response = {"text": good, "model": good_model, "meta": {"demo_quality": "better"}}
        flawed_response = {"text": flawed, "model": flawed_model, "meta": {"demo_quality": "worse", "demo_flaw": flaw}}
        responses = [good_response, flawed_response] if better_first else [flawed_response, good_response]
        is_gold = index < gold
        row: dict[str, Any] = {
            "id": f"{'gold' if is_gold else 'answer'}-{index + 1:03d}",
            "prompt": prompt,
            "responses": responses,
            "meta": {"family": family, "source": "demo generator"},
        }
        if is_gold:
            row["gold"] = {"preferred": 0 if better_first else 1}
        rows.append(row)
    return rows


def _task_texts(rng: random.Random) -> tuple[str, str, str, str, str]:
    """A prompt, its good answer, a flawed answer, the flaw and the family, drawn from the templates."""
    templates = _templates()
    families = [*templates["families"], {"name": "arithmetic"}, {"name": "conversion"}]
    family = rng.choice(families)
    if family["name"] == "arithmetic":
        prompt, good, wrong = _arithmetic(rng)
    elif family["name"] == "conversion":
        prompt, good, wrong = _conversion(rng)
    else:
        item = rng.choice(family["items"])
        prompt = rng.choice(family["prompts"]).format(**item)
        good, wrong = family["good"].format(**item), family["wrong"].format(**item)
    flaw = rng.choices(list(_FLAW_WEIGHTS), weights=list(_FLAW_WEIGHTS.values()))[0]
    if flaw == "wrong_fact":
        flawed = wrong
    elif flaw == "unhelpful":
        flawed = rng.choice(templates["generic_flaws"]["unhelpful"])
    elif flaw == "rude":
        flawed = rng.choice(templates["generic_flaws"]["rude"]).format(answer=good)
    else:  # too_short: the good answer cut off after a few words, as a generation that stopped early
        words = good.split()
        flawed = " ".join(words[: rng.randint(3, min(7, len(words) - 1))]) if len(words) > 3 else wrong
    return prompt, good, flawed, flaw, family["name"]


_TIMES = "\N{MULTIPLICATION SIGN}"


def _arithmetic(rng: random.Random) -> tuple[str, str, str]:
    a, tens, ones = rng.randint(12, 99), rng.randint(1, 9), rng.randint(1, 9)
    b = 10 * tens + ones
    product = a * b
    phrasing = rng.choice(("What is {a} {times} {b}?", "Compute {a} * {b}.", "Quick: {a} times {b}?"))
    prompt = phrasing.format(a=a, b=b, times=_TIMES)
    good = (
        f"{a} {_TIMES} {b} = **{product:,}**\n\n"
        f"Split {b} into {10 * tens} + {ones}: {a} {_TIMES} {10 * tens} = {a * 10 * tens:,}, "
        f"{a} {_TIMES} {ones} = {a * ones:,}, and {a * 10 * tens:,} + {a * ones:,} = {product:,}."
    )
    # A typical slip: the partial product of the tens is off by one ten.
    wrong = f"{a} {_TIMES} {b} = **{product + rng.choice((-10, 10)) * a:,}**"
    return prompt, good, wrong


def _conversion(rng: random.Random) -> tuple[str, str, str]:
    if rng.random() < 0.5:
        km = rng.choice((5, 10, 21, 42, 50, 80, 100, 160, 250, 400))
        prompt = rng.choice(("How many miles is {km} km?", "Convert {km} kilometres to miles.")).format(km=km)
        good = f"{km} km is about **{km * 0.621371:,.1f} miles** (1 km ≈ 0.621 miles)."
        wrong = f"{km} km is about **{km * 1.609344:,.1f} miles** (1 km ≈ 1.609 miles)."
        return prompt, good, wrong
    celsius = rng.choice((-10, 0, 4, 18, 21, 25, 30, 37, 40, 100, 180, 220))
    fahrenheit = celsius * 9 / 5 + 32
    prompt = rng.choice(("What is {c} °C in Fahrenheit?", "Convert {c}°C to °F.")).format(c=celsius)
    good = f"{celsius} °C is **{fahrenheit:g} °F** (multiply by 9/5, then add 32)."
    wrong = f"{celsius} °C is **{celsius * 9 / 5:g} °F** (multiply by 9/5)."
    return prompt, good, wrong
