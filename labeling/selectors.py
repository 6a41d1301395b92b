"""Reads of the labeling app: what reviewers see, and what managers measure."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from statistics import median
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    Count,
    Exists,
    F,
    Field,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KT, KeyTransform
from django.db.models.functions import Cast, Coalesce, Least, TruncHour
from django.db.models.lookups import IsNull
from django.utils import timezone

from labeling.aggregation import JudgementRecord, JudgementTable, arena, gold_pairs, majority, quality
from labeling.aggregation.pairs import COMPARATIVE_TYPES
from labeling.datasets import BUILD_PHASES, BuildInputs, ResponseInfo, TaskInfo, file_content_hash, read_rows
from labeling.errors import LabelingError, NotFound
from labeling.models import (
    Assignment,
    AssignmentState,
    Campaign,
    CampaignStatus,
    DataJob,
    Judgement,
    PreferenceDataset,
    Project,
    PromptText,
    Response,
    Task,
)
from labeling.rendering import RENDERER_VERSION, render_markdown
from labeling.schema import QuestionSchema, describe_answer
from labeling.services.assignment import Claim
from labeling.services.sql import field_from_db, instance_from_db
from rlhf_platform.frames import JSONValue, queryset_frame
from rlhf_platform.roles import Role


def team_counts() -> dict[str, int]:
    """Active users per role, for the manager dashboard."""
    active = get_user_model().objects.filter(is_active=True)
    return {
        "reviewers": active.filter(groups__name=Role.REVIEWER).count(),
        "managers": active.filter(Q(groups__name=Role.MANAGER) | Q(is_superuser=True)).distinct().count(),
    }


# Every reviewer request starts here, so it is one statement written out rather than built
# by the ORM (see labeling.services.sql).
REVIEWER_CAMPAIGN_FIELDS = (
    "id", "slug", "name", "status", "question_schema", "guidelines", "overlap", "lease_seconds", "gold_rate",
)  # fmt: skip
_CAMPAIGN_OF_REVIEWER = f"""
    SELECT {", ".join(f"c.{name}" for name in REVIEWER_CAMPAIGN_FIELDS)}
      FROM labeling_campaign c
      JOIN labeling_campaign_reviewers pool ON pool.campaign_id = c.id
     WHERE c.id = %(campaign)s AND pool.user_id = %(reviewer)s
"""  # noqa: S608 (names from the constant above)


def campaign_for_reviewer(*, reviewer: AbstractBaseUser, campaign_id: int) -> Campaign:
    """The campaign if the reviewer belongs to its pool; otherwise it does not exist for them."""
    with connection.cursor() as cursor:
        cursor.execute(_CAMPAIGN_OF_REVIEWER, {"campaign": campaign_id, "reviewer": reviewer.pk})
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such campaign.")
    values = dict(zip(REVIEWER_CAMPAIGN_FIELDS, row, strict=True))
    values["question_schema"] = field_from_db(Campaign, "question_schema", values["question_schema"])
    return instance_from_db(Campaign, values)


def campaigns_for_reviewer(*, reviewer: AbstractBaseUser) -> QuerySet[Campaign]:
    return Campaign.objects.filter(reviewers=reviewer, status=CampaignStatus.ACTIVE).order_by("name")


@dataclass(frozen=True)
class ReviewQueue:
    campaigns: list[Campaign]  # with work left for the reviewer (tasks_left or tasks_held)
    finished: list[Campaign]  # in their pool, but nothing left for them now


def review_queue(*, reviewer: AbstractBaseUser, now: datetime | None = None) -> ReviewQueue:
    """The reviewer's active campaigns, by name, split by whether work is left for them; one query.

    Each campaign carries ``tasks_left``: regular tasks the assignment rules could still give this
    reviewer (``labeling.services.assignment``: two responses or more, not judged, skipped or held
    by them, and a slot free under the overlap, a lapsed lease's slot counting as free), and
    ``tasks_held``: tasks they hold now, which the workspace resumes. Gold tasks are not counted:
    they are served only beside regular ones, so once no regular task is left, no gold task
    comes either, and a count that included them would promise work the workspace never gives.
    """
    now = now or timezone.now()
    lapsed_holds = (
        Assignment.objects.filter(task=OuterRef("pk"), state=AssignmentState.ACTIVE, lease_expires_at__lt=now)
        .order_by()
        .values("task")
        .annotate(count=Count("pk"))
        .values("count")
    )
    theirs = Assignment.objects.filter(task=OuterRef("pk"), reviewer=reviewer).exclude(state=AssignmentState.EXPIRED)
    # A hold of theirs that lapsed is about to expire: the task is theirs to take again.
    theirs = theirs.exclude(state=AssignmentState.ACTIVE, lease_expires_at__lt=now)
    open_to_them = (
        Task.objects.filter(campaign=OuterRef("pk"), is_gold=False, response_count__gte=2)
        .annotate(taken=F("slots_taken") - F("extra_votes") - Coalesce(Subquery(lapsed_holds), 0))
        .filter(taken__lt=OuterRef("overlap"))
        .exclude(Exists(theirs))
        .order_by()
        .values("campaign")
        .annotate(count=Count("pk"))
        .values("count")
    )
    held = (
        Assignment.objects.filter(
            task__campaign=OuterRef("pk"),
            reviewer=reviewer,
            state=AssignmentState.ACTIVE,
            lease_expires_at__gte=now,
        )
        .order_by()
        .values("task__campaign")
        .annotate(count=Count("pk"))
        .values("count")
    )
    campaigns = (
        campaigns_for_reviewer(reviewer=reviewer)
        .select_related("project")
        .annotate(
            tasks_left=Coalesce(Subquery(open_to_them, output_field=IntegerField()), 0),
            tasks_held=Coalesce(Subquery(held, output_field=IntegerField()), 0),
        )
    )
    with_work, finished = [], []
    for campaign in campaigns:
        (with_work if campaign.tasks_left or campaign.tasks_held else finished).append(campaign)
    return ReviewQueue(campaigns=with_work, finished=finished)


def active_assignments(*, reviewer: AbstractBaseUser, campaign: Campaign) -> QuerySet[Assignment]:
    """Tasks the reviewer holds now, oldest first: a reload resumes where they were."""
    return Assignment.objects.filter(
        reviewer=reviewer,
        task__campaign=campaign,
        state=AssignmentState.ACTIVE,
        lease_expires_at__gt=timezone.now(),
    ).order_by("assigned_at", "pk")


def _render_prompt(prompt: str | list[dict[str, str]]) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return [{"role": m["role"], "html": render_markdown(m["content"])} for m in messages]


def assignment_payload(
    assignment: Assignment,
    *,
    responses: dict[int, str] | None = None,
    stored_html: dict[int, str] | None = None,
    may_have_previous: bool = True,
) -> dict[str, Any]:
    """Everything the workspace shows for one task, and nothing a reviewer must not see.

    No model names, metadata, external ids, gold answers or other reviewers' answers:
    a gold task and a regular one look the same. Responses come in the order this
    reviewer was assigned, as HTML stored by the current renderer or else rendered now.
    ``responses`` (id to text) and ``stored_html`` (id to HTML) save a read when the caller
    has them; ``may_have_previous=False`` skips looking for answers retracted by an undo.
    """
    stored_html = stored_html or {}
    if responses is None:
        rows = Response.objects.filter(task_id=assignment.task_id).values_list("pk", "text", "html", "rendered_with")
        responses = {pk: text for pk, text, _, _ in rows}
        stored_html = {pk: html for pk, _, html, renderer in rows if renderer == RENDERER_VERSION}
    previous = None
    if may_have_previous:
        previous = (
            Judgement.objects.filter(assignment=assignment, retracted_at__isnull=False)
            .order_by("-submitted_at")
            .values_list("answers", flat=True)
            .first()
        )
    return {
        "assignment_id": assignment.pk,
        "lease_expires_at": assignment.lease_expires_at.isoformat(),
        "prompt": _render_prompt(assignment.task.prompt),
        "responses": [
            {"id": pk, "html": stored_html.get(pk) or render_markdown(responses[pk]), "text": responses[pk]}
            for pk in assignment.shown_order
        ],
        "previous_answers": previous,
    }


def claim_payload(claim: Claim) -> dict[str, Any]:
    """The payload of a task just claimed; only a reused assignment can have retracted answers."""
    return assignment_payload(
        claim.assignment, responses=claim.responses, stored_html=claim.stored_html, may_have_previous=claim.reused
    )


def reviewer_progress(*, reviewer: AbstractBaseUser, campaign: Campaign, now: datetime | None = None) -> dict[str, int]:
    """Judgements the reviewer made today in the campaign, and what the campaign still needs."""
    now = now or timezone.now()
    start_of_day = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    done_today = Judgement.objects.filter(
        reviewer=reviewer, task__campaign=campaign, retracted_at__isnull=True, submitted_at__gte=start_of_day
    ).count()
    return {"done_today": done_today, "left_in_campaign": _judgements_left(campaign)}


def _judgements_left(campaign: Campaign) -> int:
    """Judgements the campaign still wants: each regular task counts up to its overlap plus its re-queued votes."""
    wanted = Value(campaign.overlap) + F("extra_votes")
    counts = Task.objects.filter(campaign=campaign, is_gold=False, response_count__gte=2).aggregate(
        wanted=Sum(wanted),
        # Judgements beyond the overlap (possible after the overlap was lowered) do not count.
        done=Sum(Least("judgement_count", wanted, output_field=IntegerField())),
    )
    return max(0, (counts["wanted"] or 0) - (counts["done"] or 0))


def campaign_stats(*, campaign: Campaign, now: datetime | None = None, hours: int = 24) -> dict[str, Any]:
    """Progress, throughput and per-reviewer counts for the campaign dashboard and API."""
    now = now or timezone.now()
    tasks = Task.objects.filter(campaign=campaign)
    task_counts = tasks.aggregate(
        total=Count("pk"),
        gold=Count("pk", filter=Q(is_gold=True)),
        prompt_only=Count("pk", filter=Q(response_count__lt=2)),
        complete=Count("pk", filter=Q(is_gold=False, judgement_count__gte=campaign.overlap + F("extra_votes"))),
        extra_votes=Sum("extra_votes", filter=Q(is_gold=False, response_count__gte=2), default=0),
    )
    regular = task_counts["total"] - task_counts["gold"] - task_counts["prompt_only"]
    wanted, left = regular * campaign.overlap + task_counts.pop("extra_votes"), _judgements_left(campaign)
    judgements = Judgement.objects.filter(task__campaign=campaign, retracted_at__isnull=True)
    since = (now - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    per_hour = dict(
        judgements.filter(submitted_at__gte=since)
        .annotate(hour=TruncHour("submitted_at"))
        .values_list("hour")
        .annotate(n=Count("pk"))
        .values_list("hour", "n")
    )
    hour_series = [
        {"hour": (since + timedelta(hours=i)).isoformat(), "judgements": per_hour.get(since + timedelta(hours=i), 0)}
        for i in range(hours)
    ]
    return {
        "tasks": {**task_counts, "regular": regular},
        "judgements": judgements.count(),
        "judgements_wanted": wanted,
        "judgements_left": left,
        "judgements_done": wanted - left,
        "percent": round(100 * (wanted - left) / wanted) if wanted else 0,
        "active_assignments": Assignment.objects.filter(
            task__campaign=campaign, state=AssignmentState.ACTIVE, lease_expires_at__gt=now
        ).count(),
        "per_hour": hour_series,
        "reviewers": reviewer_table(campaign=campaign),
    }


def reviewer_table(*, campaign: Campaign) -> list[dict[str, Any]]:
    """One row per reviewer of the pool (and anyone who answered): counts and median time."""
    times: dict[int, list[int]] = {}
    for reviewer_id, spent in Judgement.objects.filter(task__campaign=campaign, retracted_at__isnull=True).values_list(
        "reviewer_id", "time_spent_ms"
    ):
        times.setdefault(reviewer_id, []).append(spent)
    skips = dict(
        Assignment.objects.filter(task__campaign=campaign, state=AssignmentState.SKIPPED)
        .values_list("reviewer_id")
        .annotate(n=Count("pk"))
        .values_list("reviewer_id", "n")
    )
    pool = set(campaign.reviewers.values_list("pk", flat=True))
    users = get_user_model().objects.filter(pk__in=pool | set(times) | set(skips)).order_by("username")
    return [
        {
            "reviewer": user.get_username(),
            "in_pool": user.pk in pool,
            "judgements": len(times.get(user.pk, [])),
            "skips": skips.get(user.pk, 0),
            "median_seconds": round(median(times[user.pk]) / 1000, 1) if times.get(user.pk) else None,
        }
        for user in users
    ]


def projects_overview(*, projects: Iterable[Project]) -> list[dict[str, Any]]:
    """The projects with their campaigns and their progress, for the manager dashboard.

    Progress counts judgements of regular tasks, each task counted up to the campaign's
    overlap, like ``campaign_stats`` does.
    """
    regular = Q(tasks__is_gold=False, tasks__response_count__gte=2)
    projects = list(projects)
    campaigns = (
        Campaign.objects.filter(project__in=projects)
        .annotate(
            regular_tasks=Count("tasks", filter=regular),
            judgements_done=Sum(
                Least("tasks__judgement_count", F("overlap") + F("tasks__extra_votes"), output_field=IntegerField()),
                filter=regular,
            ),
            extra_votes=Sum("tasks__extra_votes", filter=regular, default=0),
        )
        .order_by("project_id", "-created_at")
    )
    by_project: dict[int, list[dict[str, Any]]] = {}
    for campaign in campaigns:
        wanted = campaign.regular_tasks * campaign.overlap + campaign.extra_votes
        done = campaign.judgements_done or 0
        by_project.setdefault(campaign.project_id, []).append(
            {
                "campaign": campaign,
                "done": done,
                "wanted": wanted,
                "percent": round(100 * done / wanted) if wanted else 0,
            }
        )
    return [{"project": project, "campaigns": by_project.get(project.pk, [])} for project in projects]


def reviewer_pool_choices(*, campaign: Campaign) -> list[dict[str, Any]]:
    """All active reviewers, each marked whether they are in the campaign's pool."""
    pool = set(campaign.reviewers.values_list("pk", flat=True))
    reviewers = (
        get_user_model().objects.filter(is_active=True, groups__name=Role.REVIEWER).distinct().order_by("username")
    )
    return [
        {"username": user.get_username(), "full_name": user.get_full_name(), "in_pool": user.pk in pool}
        for user in reviewers
    ]


def pool_team_choices(*, campaign: Campaign) -> list[dict[str, Any]]:
    """Teams (auth groups other than the role groups) with what adding each to the pool would do:
    its current active reviewers, and how many of them are not in the pool yet."""
    from django.contrib.auth.models import Group

    pool = set(campaign.reviewers.values_list("pk", flat=True))
    reviewers = set(
        get_user_model().objects.filter(is_active=True, groups__name=Role.REVIEWER).values_list("pk", flat=True)
    )
    members: dict[int, set[int]] = {}
    teams = list(Group.objects.exclude(name__in=list(Role)).order_by("name"))
    through = get_user_model().groups.through
    for group_id, user_id in through.objects.filter(group__in=teams).values_list("group_id", "user_id"):
        members.setdefault(group_id, set()).add(user_id)
    choices = []
    for team in teams:
        team_reviewers = members.get(team.pk, set()) & reviewers
        count, new = len(team_reviewers), len(team_reviewers - pool)
        plural = "s" if count != 1 else ""
        if not count:
            label = f"{team.name}: no active reviewers among its {len(members.get(team.pk, ()))} people"
        elif new == count:
            label = f"{team.name}: adds its {count} current reviewer{plural}"
        elif new:
            label = f"{team.name}: adds {new} of its {count} current reviewer{plural} (the others are in the pool)"
        else:
            label = f"{team.name}: its {count} reviewer{plural} are in the pool already"
        choices.append({"id": team.pk, "name": team.name, "reviewers": count, "new": new, "label": label})
    return choices


def workspace_config(*, campaign: Campaign) -> dict[str, Any]:
    """What the reviewer workspace script needs to start: questions, guidelines, API addresses."""
    api = f"/api/campaigns/{campaign.pk}"
    return {
        "campaign": {
            "id": campaign.pk,
            "name": campaign.name,
            "questions": campaign.question_schema["questions"],
            "guidelines_html": render_markdown(campaign.guidelines),
        },
        "api": {
            "held": f"{api}/held/",
            "next": f"{api}/next/",
            "undo": f"{api}/undo/",
            "progress": f"{api}/progress/",
            "submit": "/api/assignments/{id}/submit/",
            "skip": "/api/assignments/{id}/skip/",
        },
    }


def campaign_has_judgements(*, campaign: Campaign) -> bool:
    """Whether reviewers have answered; the campaign's questions are fixed from then on."""
    return Task.objects.filter(campaign=campaign, judgement_count__gt=0).exists()


def data_job_get(*, job_id: int) -> DataJob:
    job = DataJob.objects.select_related("campaign", "dataset", "created_by").filter(pk=job_id).first()
    if job is None:
        raise NotFound("No such job.")
    return job


def data_jobs_recent(
    *, campaign: Campaign | None = None, kind: str | None = None, limit: int = 5, besides: DataJob | None = None
) -> list[DataJob]:
    """The newest data jobs (of ``campaign``, of ``kind``, other than ``besides``), for the pages that start them."""
    jobs = DataJob.objects.select_related("campaign", "dataset", "created_by").order_by("-created_at", "-id")
    if besides is not None:  # a job's own page shows it, live, above its list: a second, frozen copy would disagree
        jobs = jobs.exclude(pk=besides.pk)
    if campaign is not None:
        jobs = jobs.filter(campaign=campaign)
    if kind is not None:
        jobs = jobs.filter(kind=kind)
    return list(jobs[:limit])


def data_job_progress(*, job: DataJob) -> dict[str, Any]:
    """How far a job is: ``done`` of ``total`` (bytes of an import, phases of a build), ``rows``
    checked, the build's ``phase`` and its label, and ``percent``.

    While the job runs, the figures come from its progress file (labeling.services.data_jobs:
    the row is not written until the job ends); before and after, from the row.
    """
    live: dict[str, Any] | None = None
    if job.status == DataJob.Status.RUNNING:
        try:
            live = json.loads(job.progress_path.read_text())
        except FileNotFoundError:
            live = None  # claimed, and the worker has not written its first figures yet
    done = int(live.get("done", 0)) if live else job.progress_done
    rows = int(live.get("rows", 0)) if live else job.rows_done
    phase = str(live.get("phase", "")) if live else ""
    total = job.progress_total
    if job.status == DataJob.Status.SUCCEEDED:
        percent = 100.0
    else:
        percent = round(min(100.0 * done / total, 100.0), 1) if total else 0.0
    return {
        "done": done,
        "total": total,
        "rows": rows,
        "phase": phase,
        "phase_label": BUILD_PHASES.get(phase, ""),
        "percent": percent,
    }


def datasets_overview() -> QuerySet[PreferenceDataset]:
    return PreferenceDataset.objects.select_related("created_by").prefetch_related("campaigns")


@dataclass(frozen=True)
class SnapshotCheck:
    """Whether a snapshot's file still holds what was built: "ok", "missing" or "mismatch"."""

    dataset: PreferenceDataset
    outcome: str


def datasets_verify() -> Iterator[SnapshotCheck]:
    """Every snapshot's file rehashed against its ``content_hash`` (reads every file in full)."""
    for dataset in PreferenceDataset.objects.order_by("pk").iterator():
        if not dataset.path.is_file():
            yield SnapshotCheck(dataset, "missing")
            continue
        try:
            matches = file_content_hash(dataset.path, dataset.parameters) == dataset.content_hash
        except ValueError:
            # A line that is no longer JSON (or UTF-8): the file was changed after the build.
            matches = False
        yield SnapshotCheck(dataset, "ok" if matches else "mismatch")


def dataset_preview(*, dataset: PreferenceDataset, rows: int = 5) -> list[dict[str, Any]]:
    """The first rows of a snapshot, for a look before downloading."""
    if not dataset.path.exists():
        return []
    return list(islice(read_rows(dataset.path), rows))


@dataclass
class CampaignQuality:
    agreement: Any  # quality.PairwiseAgreement, or None without comparative judgements
    ranking: Any  # quality.Agreement for ranking campaigns
    likert: Any  # quality.Agreement for likert campaigns
    reviewers: list[dict[str, Any]]
    over_time: list[dict[str, Any]]


def _without_nan(row: dict[str, Any]) -> dict[str, Any]:
    """NaN (nothing to measure: no gold answered, no time, alpha undefined) as None; pages show a dash."""
    return {key: None if isinstance(value, float) and value != value else value for key, value in row.items()}


def _reviewer_quality(campaign: Campaign, inputs: BuildInputs) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The pairs of the campaign's judgements (loaded in ``inputs``), their timings, and the reviewer table."""
    pairs = inputs.judgements.expand()
    if pairs.empty:
        return pairs, pd.DataFrame(), pd.DataFrame()
    timings = pd.DataFrame.from_records(
        Judgement.objects.filter(task__campaign=campaign, retracted_at__isnull=True).values(
            "pk", "reviewer_id", "time_spent_ms", "submitted_at"
        ),
    ).rename(columns={"pk": "judgement_id"})
    gold = gold_pairs(task for task in inputs.tasks.values() if task.is_gold)
    table = quality.reviewer_table(pairs, consensus=majority(pairs), judgements=timings, gold_pairs=gold)
    return pairs, timings, table


def campaign_quality(*, campaign: Campaign) -> CampaignQuality:
    """Agreement and the reviewer table of a campaign, from its (non-retracted) judgements."""
    inputs = load_build_inputs([campaign], keep_records=True)
    records = inputs.records
    pairs, timings, table = _reviewer_quality(campaign, inputs)
    if pairs.empty:
        return CampaignQuality(None, None, None, [], [])
    usernames = dict(
        get_user_model().objects.filter(pk__in=table["reviewer_id"].tolist()).values_list("pk", "username")
    )
    reviewers = [
        {**_without_nan(row), "reviewer": usernames.get(row["reviewer_id"], str(row["reviewer_id"]))}
        for row in table.to_dict("records")
    ]
    question_types = {r.question_type for r in records}
    over_time = quality.agreement_over_time(pairs, judgements=timings).to_dict("records")
    return CampaignQuality(
        agreement=quality.pairwise_agreement(pairs),
        ranking=quality.ranking_agreement(records) if "ranking" in question_types else None,
        likert=quality.likert_agreement(records) if "likert" in question_types else None,
        reviewers=reviewers,
        over_time=[_without_nan(point) for point in over_time],
    )


def flagged_reviewer_ids(*, campaigns: list[Campaign]) -> list[int]:
    """Reviewers the quality table flags in any of the campaigns."""
    flagged: set[int] = set()
    for campaign in campaigns:
        pairs, _, table = _reviewer_quality(campaign, load_build_inputs([campaign]))
        if not pairs.empty:
            flagged.update(int(reviewer_id) for reviewer_id in table.loc[table["flagged"], "reviewer_id"])
    return sorted(flagged)


def _comparative_question(schema: QuestionSchema) -> tuple[str, str] | None:
    """The question a dataset is built from: pairwise or ranking first, else likert."""
    questions = {q.type: q.id for q in reversed(schema.questions)}
    for question_type in COMPARATIVE_TYPES:
        if question_type in questions:
            return questions[question_type], question_type
    return None


def _question_of_type(schema: QuestionSchema, question_type: str) -> str | None:
    return next((q.id for q in schema.questions if q.type == question_type), None)


def load_build_inputs(campaigns: Iterable[Campaign], *, keep_records: bool = False) -> BuildInputs:
    """Judgements (in columns), tasks, responses, flagged responses and rewrites of the campaigns.

    Retracted judgements are left out. A campaign without a comparative question still gives its
    rewrites (SFT demonstrations). ``keep_records`` also keeps each comparative answer as a
    ``JudgementRecord`` (far more memory; for the quality page's ranking and Likert statistics).
    """
    inputs = BuildInputs()
    for campaign in campaigns:
        schema = campaign.schema  # parsed once: each access validates the whole schema
        question = _comparative_question(schema)
        flag_id = _question_of_type(schema, "flags")
        rewrite_id = _question_of_type(schema, "rewrite")
        response_ids: dict[int, list[int]] = {}
        responses = Response.objects.filter(task__campaign=campaign).values_list("pk", "task_id", "text", "model_name")
        for pk, task_id, text, model_name in responses.iterator(chunk_size=5000):
            inputs.responses[pk] = ResponseInfo(pk, text, model_name)
            response_ids.setdefault(task_id, []).append(pk)
        tasks = Task.objects.filter(campaign=campaign, response_count__gte=2)
        # Only gold tasks have a gold answer worth decoding; a campaign may have a million tasks.
        gold = dict(tasks.filter(is_gold=True).values_list("pk", "gold"))
        for pk, prompt, external_id in tasks.values_list("pk", "prompt", "external_id").iterator(chunk_size=5000):
            inputs.tasks[pk] = TaskInfo(
                task_id=pk,
                prompt=prompt,
                group_id=external_id or f"task-{pk}",
                is_gold=pk in gold,
                gold=gold.get(pk),
                response_ids=tuple(response_ids.get(pk, ())),
            )
        judgements = Judgement.objects.filter(task__campaign=campaign, retracted_at__isnull=True).order_by()
        if question is not None:
            question_id, question_type = question
            one_by_one = judgements
            if question_type == "pairwise" and not keep_records:
                one_by_one = judgements.filter(pk__in=_add_pairwise_columns(judgements, question_id, inputs))
            answers = one_by_one.values_list(
                "pk", "task_id", "reviewer_id", KeyTransform(question_id, "answers"), "shown_order"
            )
            for pk, task_id, reviewer_id, answer, shown_order in answers.iterator(chunk_size=5000):
                task = inputs.tasks[task_id]
                fields = {
                    "judgement_id": pk,
                    "task_id": task_id,
                    "reviewer_id": reviewer_id,
                    "question_type": question_type,
                    "answer": answer,
                    "response_ids": task.response_ids,
                    "shown_order": shown_order,
                    "is_gold": task.is_gold,
                }
                inputs.judgements.add(**fields)
                if keep_records:
                    record = {**fields, "shown_order": tuple(shown_order), "gold": task.gold}
                    inputs.records.append(JudgementRecord(**record))
        if flag_id:
            flags = judgements.filter(answers__has_key=flag_id).values_list(KeyTransform(flag_id, "answers"), flat=True)
            for by_response in flags.iterator(chunk_size=5000):
                inputs.flagged_responses.update(int(r) for r, marked in (by_response or {}).items() if marked)
        if rewrite_id:
            rewrites = judgements.filter(answers__has_key=rewrite_id).values_list(
                "task_id", "reviewer_id", KeyTransform(rewrite_id, "answers")
            )
            for task_id, reviewer_id, rewrite in rewrites.iterator(chunk_size=5000):
                if rewrite:
                    inputs.rewrites.append((task_id, reviewer_id, rewrite["text"]))
    return inputs


def _add_pairwise_columns(judgements: QuerySet[Judgement], question_id: str, inputs: BuildInputs) -> list[int]:
    """Add the judgements' answers to ``question_id`` (pairwise) to ``inputs.judgements`` in columns.

    The database takes the answers apart (winner, strength, both-bad, the two responses shown), so
    no answer is decoded in Python: a million judgements read in about two seconds on PostgreSQL
    rather than fifteen. Returns the ids of the judgements it could not take this way (not shown
    exactly two responses), for the caller to add one by one.
    """

    def answer(*path: str | int, output_field: Field | None = None) -> JSONValue:
        return JSONValue("answers", question_id, *path, output_field=output_field or BigIntegerField())

    columns = queryset_frame(
        judgements.annotate(
            answered=IsNull(answer(output_field=TextField()), False),
            winner=answer("winner"),
            strength=answer("strength"),
            both_bad=answer("both_bad", output_field=BooleanField()),
            shown_first=JSONValue("shown_order", 0, output_field=BigIntegerField()),
            shown_second=JSONValue("shown_order", 1, output_field=BigIntegerField()),
            shown_more=IsNull(JSONValue("shown_order", 2, output_field=BigIntegerField()), False),
        ),
        {
            "pk": "int64", "task_id": "int64", "reviewer_id": "int64", "answered": "boolean", "winner": "int64",
            "strength": "int64", "both_bad": "boolean", "shown_first": "int64", "shown_second": "int64",
            "shown_more": "boolean",
        },
    )  # fmt: skip
    regular = columns["shown_first"].notna() & columns["shown_second"].notna() & ~columns["shown_more"]
    irregular = columns.loc[columns["answered"] & ~regular, "pk"].tolist()
    columns = columns[columns["answered"] & regular]
    task_id = columns["task_id"].to_numpy(np.int64)
    gold_tasks = np.fromiter((t.task_id for t in inputs.tasks.values() if t.is_gold), dtype=np.int64)
    inputs.judgements.extend_pairwise(
        judgement_id=columns["pk"].to_numpy(np.int64),
        task_id=task_id,
        reviewer_id=columns["reviewer_id"].to_numpy(np.int64),
        shown=columns[["shown_first", "shown_second"]].to_numpy(np.int64),
        winner=columns["winner"].fillna(-1).to_numpy(np.int64),
        strength=columns["strength"].fillna(1).to_numpy(np.int64),
        both_bad=columns["both_bad"].fillna(False).to_numpy(bool),
        is_gold=np.isin(task_id, gold_tasks),
    )
    return irregular


def pseudonym(reviewer_id: int) -> str:
    """A stable reviewer pseudonym for exports: an HMAC of the id under this deployment's secret key.

    The same reviewer gets the same pseudonym in every export, so agreement can be studied, but the
    id cannot be recovered without the key.
    """
    digest = hmac.new(settings.SECRET_KEY.encode(), f"reviewer:{reviewer_id}".encode(), hashlib.sha256)
    return f"r-{digest.hexdigest()[:12]}"


def raw_judgement_rows(*, campaign: Campaign) -> Iterator[dict[str, Any]]:
    """One row per judgement (retracted ones included and marked), streamed from the database.

    Responses appear by id and in the shown order; reviewers by pseudonym; times in milliseconds.
    """
    judgements = (
        Judgement.objects.filter(task__campaign=campaign)
        .order_by("pk")
        .values_list(
            "pk", "task_id", "task__external_id", "reviewer_id", "answers", "shown_order", "time_spent_ms",
            "submitted_at", "retracted_at",
        )
    )  # fmt: skip
    for pk, task_id, external_id, reviewer_id, answers, shown, spent, submitted, retracted in judgements.iterator(
        chunk_size=5000
    ):
        yield {
            "judgement_id": pk,
            "campaign": campaign.slug,
            "task_id": task_id,
            "external_id": external_id,
            "reviewer": pseudonym(reviewer_id),
            "answers": answers,
            "shown_order": shown,
            "time_spent_ms": spent,
            "submitted_at": submitted.isoformat(),
            "retracted_at": retracted.isoformat() if retracted else None,
        }


# --- models compared: battles, win rates and the leaderboard -------------------------------------

COMPARISON_COLUMNS = (
    "campaign_id", "task_id", "judgement_id", "reviewer_id", "response_a", "response_b", "model_a", "model_b",
    "outcome",
)  # fmt: skip


def comparisons(*, campaigns: Iterable[Campaign], include_gold: bool = False) -> pd.DataFrame:
    """Every comparison reviewers made between two responses, with the models that wrote them.

    One row per (judgement, pair of responses), ``COMPARISON_COLUMNS``: a pairwise answer gives one
    row and a ranking of K responses C(K, 2) rows (``labeling.aggregation.pairs``). ``outcome`` is
    one of ``arena.OUTCOMES`` for ``response_a`` against ``response_b`` (a < b by id): a both-bad
    answer is ``"both_bad"`` whichever side it preferred. ``model_a`` and ``model_b`` are the
    responses' ``model_name`` ("" when the import named none). Only pairwise and ranking questions
    count: a Likert score is not a comparison the reviewer made. Retracted judgements are left
    out, and gold tasks unless ``include_gold``: their answers exist to measure the reviewers.
    """
    table = JudgementTable()
    models: dict[int, str] = {}
    campaign_of_task: dict[int, int] = {}
    for campaign in campaigns:
        question = _comparative_question(campaign.schema)
        if question is None or question[1] not in ("pairwise", "ranking"):
            continue
        question_id, question_type = question
        tasks = Task.objects.filter(campaign=campaign, response_count__gte=2)
        if not include_gold:
            tasks = tasks.filter(is_gold=False)
        response_ids: dict[int, list[int]] = {}
        responses = Response.objects.filter(task__in=tasks).order_by("task_id", "position")
        for pk, task_id, model_name in responses.values_list("pk", "task_id", "model_name"):
            models[pk] = model_name
            response_ids.setdefault(task_id, []).append(pk)
        campaign_of_task.update(dict.fromkeys(response_ids, campaign.pk))
        judgements = Judgement.objects.filter(task__in=tasks, retracted_at__isnull=True).values_list(
            "pk", "task_id", "reviewer_id", "answers", "shown_order"
        )
        for pk, task_id, reviewer_id, answers, shown_order in judgements.iterator(chunk_size=5000):
            table.add(
                judgement_id=pk,
                task_id=task_id,
                reviewer_id=reviewer_id,
                question_type=question_type,
                answer=answers.get(question_id),
                response_ids=tuple(response_ids[task_id]),
                shown_order=shown_order,
            )
    pairs = table.expand()
    outcome = np.select(
        [pairs["both_bad"].to_numpy(bool), pairs["outcome"].to_numpy() == 1.0, pairs["outcome"].to_numpy() == 0.0],
        ["both_bad", "a", "b"],
        "tie",
    )
    return pd.DataFrame(
        {
            "campaign_id": pairs["task_id"].map(campaign_of_task).astype("int64"),
            "task_id": pairs["task_id"],
            "judgement_id": pairs["judgement_id"],
            "reviewer_id": pairs["reviewer_id"],
            "response_a": pairs["a"],
            "response_b": pairs["b"],
            "model_a": pairs["a"].map(models).astype("object"),
            "model_b": pairs["b"].map(models).astype("object"),
            "outcome": pd.Series(outcome, index=pairs.index, dtype="object"),
        },
        columns=list(COMPARISON_COLUMNS),
    )


def project_battles(*, project: Project) -> pd.DataFrame:
    """The project's battles between models (``labeling.aggregation.arena``'s battles frame).

    Every comparison of ``comparisons`` over the project's campaigns, whatever their status,
    between responses of two different named models: responses without a model name, and two
    answers of the same model, say nothing about models against each other.
    """
    rows = comparisons(campaigns=Campaign.objects.filter(project=project).order_by("pk"))
    named = (rows["model_a"] != "") & (rows["model_b"] != "") & (rows["model_a"] != rows["model_b"])
    return rows[named].reset_index(drop=True)


@dataclass(frozen=True)
class ModelLeaderboard:
    """A project's models ranked by Bradley-Terry rating, and their head-to-head records.

    ``rows``: ``arena.leaderboard``'s rows as dicts (NaN as None), best first. ``head_to_head``:
    ``arena.head_to_head``'s rows in the same model order. ``battles``: how many battles the fit
    saw (both-bad ones included); ``groups``: parts of the comparison graph (more than one means
    some ratings were never compared with each other).
    """

    project: Project
    rows: list[dict[str, Any]]
    head_to_head: list[dict[str, Any]]
    battles: int
    groups: int
    n_bootstrap: int
    confidence: float

    @property
    def models(self) -> list[str]:
        return [row["model"] for row in self.rows]


def project_leaderboard(
    *, project: Project, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
) -> ModelLeaderboard:
    """The Bradley-Terry leaderboard of the project's models, from every human comparison between them."""
    battles = project_battles(project=project)
    board = arena.leaderboard(battles, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
    matrix = arena.head_to_head(battles, models=board["model"].tolist())
    return ModelLeaderboard(
        project=project,
        rows=[_without_nan(row) for row in board.to_dict("records")],
        head_to_head=[_without_nan(row) for row in matrix.to_dict("records")],
        battles=len(battles),
        groups=int(board["group"].max()) + 1 if len(board) else 0,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
    )


# --- the task browser ----------------------------------------------------------------------


@dataclass(frozen=True)
class TaskFilters:
    """What the task browser shows: every field None (or empty) means "any"."""

    agreement_min: float | None = None
    agreement_max: float | None = None
    judgements_min: int | None = None
    judgements_max: int | None = None
    gold: bool | None = None
    flagged: bool | None = None
    skipped: bool | None = None
    reviewer: AbstractBaseUser | None = None  # tasks this reviewer judged (live judgements)
    prompt_min: int | None = None  # characters
    prompt_max: int | None = None
    meta: tuple[str, str] | None = None  # key, value: as text, exactly
    q: str = ""  # in the prompt or the external id, any case
    sort: str = "id"


# Sort keys to ORDER BY; the id last, so that pages never overlap or skip a row.
_TASK_ORDER = {
    "id": F("id").asc(),
    "agreement": F("agreement").asc(nulls_last=True),
    "judgements": F("judgement_count").asc(),
    "flags": F("flag_count").asc(),
    "skips": F("skip_count").asc(),
    "prompt_length": F("prompt_length").asc(),
}


def tasks_browse(*, campaign: Campaign, filters: TaskFilters) -> QuerySet[Task]:
    """The campaign's tasks that pass ``filters``, in their sort, each with ``prompt_length`` and ``votes_wanted``.

    Agreement, flags and skips are the task's stored summary (``labeling.services.tasks``), the
    prompt's length a column the database computes; the meta and text filters are computed on
    read, one pass over the campaign's rows (measured by ``benchmarks/task_browser.py``).
    """
    tasks = Task.objects.filter(campaign=campaign).annotate(
        prompt_length=F("prompt_chars"),
        votes_wanted=Case(
            When(is_gold=True, then=None),
            default=Value(campaign.overlap) + F("extra_votes"),
            output_field=IntegerField(),
        ),
    )
    ranges = (
        ("agreement", filters.agreement_min, filters.agreement_max),
        ("judgement_count", filters.judgements_min, filters.judgements_max),
        ("prompt_length", filters.prompt_min, filters.prompt_max),
    )
    for field, low, high in ranges:
        if low is not None:
            tasks = tasks.filter(**{f"{field}__gte": low})
        if high is not None:
            tasks = tasks.filter(**{f"{field}__lte": high})
    if filters.gold is not None:
        tasks = tasks.filter(is_gold=filters.gold)
    if filters.flagged is not None:
        tasks = tasks.filter(flag_count__gt=0) if filters.flagged else tasks.filter(flag_count=0)
    if filters.skipped is not None:
        tasks = tasks.filter(skip_count__gt=0) if filters.skipped else tasks.filter(skip_count=0)
    if filters.reviewer is not None:
        judged = Judgement.objects.filter(reviewer=filters.reviewer, retracted_at__isnull=True).values("task_id")
        tasks = tasks.filter(pk__in=judged)
    if filters.meta is not None:
        key, value = filters.meta
        tasks = tasks.alias(meta_value=Cast(KT(f"meta__{key}"), TextField())).filter(meta_value=value)
    if filters.q:
        tasks = tasks.alias(prompt_text=PromptText("prompt")).filter(
            Q(prompt_text__icontains=filters.q) | Q(external_id__icontains=filters.q)
        )
    key = filters.sort.removeprefix("-")
    order = _TASK_ORDER[key]
    if filters.sort.startswith("-"):
        order = order.copy()
        order.reverse_ordering()
        if key == "agreement":
            order.nulls_first, order.nulls_last = False, True
    tie_break = "-id" if filters.sort.startswith("-") else "id"
    return tasks.order_by(order, tie_break) if key != "id" else tasks.order_by(tie_break)


@dataclass(frozen=True)
class TaskPage:
    """One page of the task browser: ``tasks`` (with ``excerpt``), and where it stands among all."""

    tasks: list[Task]
    number: int
    page_size: int
    count: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.count // self.page_size))

    @property
    def first_index(self) -> int:
        return (self.number - 1) * self.page_size + 1 if self.tasks else 0

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.tasks) - 1 if self.tasks else 0


def prompt_excerpt(prompt: Any, chars: int = 160) -> str:
    """The start of a prompt as plain text: the last user message of a conversation."""
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        prompt = users[-1] if users else ""
    text = " ".join(str(prompt).split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def tasks_page(*, campaign: Campaign, filters: TaskFilters, page: int = 1, page_size: int = 50) -> TaskPage:
    """Page ``page`` of the browsed tasks, with the count of all that pass the filters.

    Pages are by offset, with a count: managers jump to a page and want to know how many tasks
    match; both cost a scan of the matching rows, which the benchmark keeps within bounds. A page
    past the last is an error (``page``), except page 1 of nothing.
    """
    tasks = tasks_browse(campaign=campaign, filters=filters)
    count = tasks.count()
    pages = max(1, -(-count // page_size))
    if page > pages:
        raise LabelingError(
            f"There {'is' if pages == 1 else 'are'} only {pages} page{'s' if pages != 1 else ''} of tasks.",
            {"page": f"Must be from 1 to {pages}."},
        )
    start = (page - 1) * page_size
    rows = list(
        tasks.only(
            "id", "external_id", "prompt", "is_gold", "response_count", "judgement_count", "slots_taken",
            "extra_votes", "agreement", "flag_count", "skip_count", "created_at",
        )[start : start + page_size]
    )  # fmt: skip
    for task in rows:
        task.excerpt = prompt_excerpt(task.prompt)
    return TaskPage(tasks=rows, number=page, page_size=page_size, count=count)


@dataclass(frozen=True)
class TaskDetail:
    """A task as its manager inspects it: its responses and every judgement and skip of it."""

    task: Task
    prompt: list[dict[str, str]]  # messages: role, html (as reviewers see them)
    # In import order: id, number (1-based position), model_name, text, html (as reviewers see it).
    responses: list[dict[str, Any]]
    # Newest first: reviewer, submitted_at, time_spent_ms, retracted_at, shown (response numbers
    # in the order that reviewer saw them), answers as given, and described: (question label, text).
    judgements: list[dict[str, Any]]
    skips: list[dict[str, Any]]  # reviewer, finished_at, reason
    holding: int  # reviewers holding it now
    votes_wanted: int | None  # None for a gold task: every reviewer sees it once

    @property
    def open_for_votes(self) -> bool:
        return self.votes_wanted is not None and self.task.slots_taken < self.votes_wanted


def task_detail(*, campaign: Campaign, task_id: int, now: datetime | None = None) -> TaskDetail:
    """One task of ``campaign`` with all it took to judge it; ``NotFound`` for another campaign's."""
    now = now or timezone.now()
    task = Task.objects.filter(campaign=campaign, pk=task_id).first()
    if task is None:
        raise NotFound("No such task in this campaign.")
    rows = Response.objects.filter(task=task).order_by("position")
    responses = [
        {
            "id": r.pk,
            "number": r.position + 1,
            "model_name": r.model_name,
            "text": r.text,
            "html": r.html if r.rendered_with == RENDERER_VERSION else render_markdown(r.text),
        }
        for r in rows
    ]
    names = {r["id"]: f"Response {r['number']}" for r in responses}
    numbers = {r["id"]: r["number"] for r in responses}
    schema = campaign.schema
    judgements = []
    for judgement in Judgement.objects.filter(task=task).select_related("reviewer").order_by("-submitted_at", "-pk"):
        answers = judgement.answers or {}
        judgements.append(
            {
                "id": judgement.pk,
                "reviewer": judgement.reviewer.get_username(),
                "submitted_at": judgement.submitted_at,
                "time_spent_ms": judgement.time_spent_ms,
                "time_spent": _time_spent_text(judgement.time_spent_ms),
                "retracted_at": judgement.retracted_at,
                "shown": [numbers.get(pk) for pk in judgement.shown_order],
                "answers": answers,
                "described": [
                    (q.label, q.type, describe_answer(q, answers[q.id], names))
                    for q in schema.questions
                    if q.id in answers
                ],
            }
        )
    skips = [
        {"reviewer": a.reviewer.get_username(), "finished_at": a.finished_at, "reason": a.skip_reason}
        for a in Assignment.objects.filter(task=task, state=AssignmentState.SKIPPED)
        .select_related("reviewer")
        .order_by("-finished_at")
    ]
    holding = Assignment.objects.filter(task=task, state=AssignmentState.ACTIVE, lease_expires_at__gte=now).count()
    wanted = None if task.is_gold else campaign.overlap + task.extra_votes
    return TaskDetail(task, _render_prompt(task.prompt), responses, judgements, skips, holding, wanted)


def _time_spent_text(ms: int) -> str:
    """A reviewer's time on a task for people: "8.4 s", "2 min 5 s"."""
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"
