"""A manager's actions on single tasks, and the per-task summary the task browser filters on.

The summary (``Task.agreement``, ``flag_count``; ``skip_count`` is counted by the skip) is kept
by the services that change what it summarises, in their transaction: the locked submit and the
undo call ``task_summary_refresh``, one ``UPDATE`` of the task row whose values the database
computes from the task's live judgements; PostgreSQL's one-statement submit does the same inside
its statement (``SUMMARY_ON_SUBMIT``). Two submits of the same task that commit within the same
instant on PostgreSQL can leave its agreement one judgement behind (each statement reads the
judgements as of its start) until the task's next judgement, undo or re-queue; the flag count,
an increment, cannot.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.db.models import Count, F, FloatField, OuterRef, Subquery, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from labeling.errors import Conflict, LabelingError, NotFound
from labeling.models import Campaign, CampaignStatus, Judgement, Task
from labeling.schema import QuestionSchema, parse_question_schema
from rlhf_platform.audit import Action, audit_record

# A re-queue asks for this many more votes at most: more would be a new campaign.
MAX_REQUEUE_VOTES = 20


def _answer_path(schema: QuestionSchema) -> list[str] | None:
    """The path in a judgement's answers to the part that agreement compares, or None.

    Pairwise: the winner (null for a tie, which is an answer of its own). Ranking: the group
    ranked first. Likert and free text have no single answer to agree on.
    """
    for question in schema.questions:
        if question.type == "pairwise":
            return [question.id, "winner"]
        if question.type == "ranking":
            return [question.id, "order", "0"]
    return None


def _answer_key(schema: QuestionSchema) -> str | None:
    """``_answer_path`` as an ORM lookup on the judgement."""
    path = _answer_path(schema)
    return None if path is None else "__".join(["answers", *path])


# PostgreSQL's one-statement submit (``labeling.services.judgements``) updates the summary in the
# same ``UPDATE labeling_task`` that counts the judgement, so that a submit stays one statement.
# That statement cannot read the judgement it inserts, so the new answer's key comes as a
# parameter, in the text form ``#>>`` gives (``submit_summary_params``); SET expressions read
# the row as it was, hence ``judgement_count + 1``.
SUMMARY_ON_SUBMIT = """,
           flag_count = flag_count + %(summary_flagged)s,
           agreement = CASE WHEN %(summary_path)s::text[] IS NULL OR judgement_count + 1 < 2 THEN NULL ELSE (
               SELECT MAX(n)::float FROM (
                   SELECT COUNT(*) AS n FROM (
                       SELECT j.answers #>> %(summary_path)s::text[] AS k FROM labeling_judgement j
                        WHERE j.task_id = labeling_task.id AND j.retracted_at IS NULL
                       UNION ALL SELECT %(summary_key)s::text
                   ) AS keys GROUP BY k
               ) AS answer_groups
           ) / (judgement_count + 1) END"""


def submit_summary_params(question_schema: Any, answers: dict[str, Any]) -> dict[str, Any]:
    """The parameters of ``SUMMARY_ON_SUBMIT`` for a judgement with these (validated) answers."""
    schema = parse_question_schema(question_schema)
    path = _answer_path(schema)
    key = None
    if path is not None:
        value: Any = answers.get(path[0], {}).get(path[1])
        if path[1] == "order":
            value = value[0] if value else None
        # As jsonb's text output writes it: numbers plain, arrays as "[1, 2]".
        key = None if value is None else (json.dumps(value) if isinstance(value, list) else str(value))
    flags = next((q.id for q in schema.questions if q.type == "flags"), None)
    return {"summary_path": path, "summary_key": key, "summary_flagged": int(bool(flags and answers.get(flags)))}


def summary_expressions(judgement_model: type[models.Model], question_schema: Any) -> dict[str, Any]:
    """The values of a task's summary columns, as expressions over the task row being updated.

    ``judgement_model`` is passed in so that a data migration can use its historical model.
    Agreement is the share of the task's live judgements that gave the most common answer
    (``_answer_key``), from two judgements on; a flag count is the judgements that flagged any
    response.
    """
    schema = parse_question_schema(question_schema)
    live = judgement_model.objects.filter(task=OuterRef("pk"), retracted_at__isnull=True).order_by()
    values: dict[str, Any] = {"flag_count": Value(0), "agreement": Value(None, output_field=FloatField())}
    flags = next((q.id for q in schema.questions if q.type == "flags"), None)
    if flags is not None:
        flagged = live.filter(answers__has_key=flags).values("task").annotate(n=Count("pk")).values("n")
        values["flag_count"] = Coalesce(Subquery(flagged), 0)
    key = _answer_key(schema)
    if key is not None:
        # The size of the largest group of equal answers.
        top = live.values(answer=KT(key)).annotate(n=Count("pk")).order_by("-n").values("n")[:1]
        values["agreement"] = models.Case(
            models.When(
                judgement_count__gte=2,
                then=Cast(Subquery(top), FloatField()) / Cast(F("judgement_count"), FloatField()),
            ),
            default=None,
            output_field=FloatField(),
        )
    return values


def task_summary_refresh(*, task_id: int, campaign: Campaign) -> None:
    """Recompute the task's agreement and flag count from its live judgements.

    Call it after the change to the judgements, in the same transaction where there is one,
    so that the figures read the change.
    """
    Task.objects.filter(pk=task_id).update(**summary_expressions(Judgement, campaign.question_schema))


def task_requeue(*, task_id: int, campaign: Campaign, votes: Any, actor: AbstractBaseUser) -> Task:
    """Ask for ``votes`` more judgements of the task, from reviewers who have not judged it.

    The task's room grows to what it holds or was owed already, whichever is more, plus
    ``votes``: a complete task is served again until ``votes`` more reviewers answer it, and
    one still in progress keeps its missing votes as well. The assignment rules keep anyone
    who judged, skipped or holds it away. Locks the task row, so two re-queues add up and a
    claim racing one sees the room before or after, never half of it.
    """
    if not isinstance(votes, int) or isinstance(votes, bool) or not 1 <= votes <= MAX_REQUEUE_VOTES:
        raise LabelingError(
            f"Ask for 1 to {MAX_REQUEUE_VOTES} more votes.",
            {"votes": f"Must be a whole number from 1 to {MAX_REQUEUE_VOTES}."},
        )
    if campaign.status == CampaignStatus.CLOSED:
        raise Conflict("The campaign is closed; it takes no more answers. Reopen it first.")
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(pk=task_id, campaign=campaign).first()
        if task is None:
            raise NotFound("No such task in this campaign.")
        if task.is_gold:
            raise Conflict("Gold tasks are shown to every reviewer once already; there is nothing to re-queue.")
        if task.response_count < 2:
            raise Conflict("This task has fewer than two responses; reviewers are never shown it.")
        owed = max(campaign.overlap + task.extra_votes, task.slots_taken)
        before = task.extra_votes
        task.extra_votes = owed + votes - campaign.overlap
        task.save(update_fields=["extra_votes"])
        # The manager acts on the figures shown: bring them up to date with the judgements.
        task_summary_refresh(task_id=task.pk, campaign=campaign)
        audit_record(
            actor=actor,
            action=Action.TASK_REQUEUE,
            target=task,
            changes={"extra_votes": (before, task.extra_votes)},
            campaign=campaign.pk,
            votes=votes,
        )
    return task
