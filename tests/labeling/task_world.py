"""A small campaign whose tasks differ in every way the task browser filters on, built through the services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from labeling.models import Campaign, Task
from labeling.services.assignment import assignment_skip
from labeling.services.judgements import judgement_submit
from rlhf_platform.roles import Role
from tests.labeling.factories import claim_next, make_campaign

SCHEMA = {
    "questions": [
        {
            "id": "preference",
            "type": "pairwise",
            "label": "Which is better?",
            "strength_labels": ["better", "much better"],
        },
        {"id": "issues", "type": "flags"},
        {"id": "why", "type": "text", "label": "Why?"},
    ]
}
ROWS = [
    {"id": "agree", "prompt": "Short?", "responses": ["A0", "B0"], "meta": {"source": "forum"}},
    {"id": "split", "prompt": "A longer question " + "x" * 100, "responses": ["A1", "B1"], "meta": {"source": "web"}},
    {"id": "flagged", "prompt": "Flag me", "responses": ["A2", "B2"], "meta": {"source": "web", "n": 3}},
    {"id": "skipped", "prompt": "Skip me", "responses": ["A3", "B3"], "meta": {"source": "web"}},
    {"id": "gold", "prompt": "Gold one", "responses": ["A4", "B4"], "gold": {"preferred": 0}},
    {"id": "fresh", "prompt": [{"role": "user", "content": "Hello there"}], "responses": ["A5", "B5"]},
]


@dataclass
class TaskWorld:
    campaign: Campaign
    reviewers: list[AbstractBaseUser]
    tasks: dict[str, Task]  # by external id


def _answers(external_id: str, index: int, ids: list[int]) -> dict:
    """Reviewer ``index``'s answers: "split" gets 2 votes against 1, "flagged" a flag from reviewer 0."""
    first = not (external_id == "split" and index == 2)
    answers = {"preference": {"winner": ids[0 if first else 1], "strength": 2}, "why": f"Reason {index}"}
    if external_id == "flagged" and index == 0:
        answers["issues"] = {str(ids[1]): ["unsafe"]}
    return answers


def build_task_world(manager: AbstractBaseUser, make_user) -> TaskWorld:
    reviewers = [make_user(f"browser-judge{i}", role=Role.REVIEWER) for i in range(3)]
    campaign = make_campaign(manager=manager, reviewers=reviewers, schema=SCHEMA, tasks=ROWS, overlap=3)
    tasks = {task.external_id: task for task in Task.objects.filter(campaign=campaign)}
    for index, reviewer in enumerate(reviewers):
        while (held := claim_next(reviewer=reviewer, campaign=campaign)) is not None:
            external_id = tasks_by_id(tasks)[held.task_id]
            if external_id == "fresh":
                continue  # left held, never answered
            if external_id == "skipped" and index == 1:
                assignment_skip(reviewer=reviewer, assignment_id=held.pk, reason="Not my <b>field</b>.")
                continue
            judgement_submit(
                reviewer=reviewer,
                assignment_id=held.pk,
                answers=_answers(external_id, index, sorted(held.shown_order)),
                client_submission_id=str(uuid.uuid4()),
                time_spent_ms=1500 + index,
            )
    tasks = {task.external_id: task for task in Task.objects.filter(campaign=campaign)}
    return TaskWorld(campaign, reviewers, tasks)


def tasks_by_id(tasks: dict[str, Task]) -> dict[int, str]:
    return {task.pk: external_id for external_id, task in tasks.items()}
