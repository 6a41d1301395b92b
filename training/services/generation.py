"""Generation jobs: a registered model answers a prompt set, and the answers become a new campaign.

Prompts come from a campaign's tasks or from an imported list. The engine's ``generate`` stage
writes ``candidates.jsonl`` in the labeling import format. The new campaign is created, as a
draft, and filled through ``labeling.services.imports`` in one transaction: a job either has its
whole campaign or none.

Without ``compare_with`` each task holds the model's K candidates for one prompt (a pairwise
question for K = 2, a ranking above). With ``compare_with`` (the previous policy) the engine runs
once per model and the campaign is a blind A/B review: each task pairs one answer of the new model
with one of the old, in a random order per task, under a pairwise question that allows a tie and
"both bad". With K candidates per model a prompt gives K tasks, candidate i of the new model
against candidate i of the old: every answer is judged once, and the pairs are as independent as
the samples. Each A/B response's ``meta`` names its model (``model_id``), so results never depend
on model names being distinct. ``generation_campaign_start`` then starts that campaign in one step
with the settings of the campaign the prompts came from.

Working directory of job ``<id>``: ``TRAINING_DIR/generation/<id>/`` with ``prompts.jsonl``,
``spec-<n>.json``, and one engine output directory per model (``output-<n>/candidates.jsonl``).
"""

from __future__ import annotations

import io
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labeling.datasets import read_rows, write_rows
from labeling.errors import LabelingError
from labeling.models import Campaign, CampaignStatus, Project
from labeling.services.campaigns import campaign_create, campaign_set_reviewers, campaign_set_status, campaign_update
from labeling.services.imports import tasks_import, tasks_import_file
from rlhf_platform.audit import Action, audit_record
from rlhf_platform.roles import Role
from training.errors import Conflict, TrainingError
from training.models import FINAL_STATUSES, RESUMABLE_STATUSES, GenerationJob, JobStatus, ModelArtifact
from training.realtime import notify_generation
from training.specs import LaunchError, check_spec

GENERATION_FIELDS = ("num_candidates", "temperature", "top_p", "max_new_tokens", "batch_size", "seed")
PAIRWISE_SCHEMA = {"questions": [{"id": "preference", "type": "pairwise", "allow_both_bad": True}]}
# The A/B question: which of two answers is better, a tie and "both bad" allowed.
AB_QUESTION = {
    "id": "preference",
    "type": "pairwise",
    "label": "Which answer is better?",
    "allow_tie": True,
    "allow_both_bad": True,
}
RANKING_SCHEMA = {"questions": [{"id": "rank", "type": "ranking", "allow_ties": True}]}


def generation_job_create(
    *,
    model: ModelArtifact,
    campaign_name: str,
    launched_by: AbstractBaseUser | None,
    project: Project | None = None,
    source_campaign: Campaign | None = None,
    prompts: list[Any] | None = None,
    compare_with: ModelArtifact | None = None,
    params: dict[str, Any] | None = None,
) -> GenerationJob:
    """Check and queue a generation job. Raises ``TrainingError``, writing nothing."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(GENERATION_FIELDS))
    if unknown:
        raise TrainingError(f"Unknown generation setting {unknown[0]!r}.", {"params": unknown[0]})
    if not (campaign_name or "").strip():
        raise TrainingError("Name the campaign the answers go to.", {"campaign_name": "This field is required."})
    if project is None and source_campaign is None:
        raise TrainingError("Choose the project of the new campaign.", {"project": "This field is required."})
    for artifact, field in ((model, "model"), (compare_with, "compare_with")):
        if artifact is not None and artifact.kind == ModelArtifact.Kind.REWARD_MODEL:
            message = f"{artifact.name} is a reward model; it cannot answer prompts."
            raise TrainingError(message, {field: "Not a policy."})
    if bool(source_campaign) == bool(prompts):
        raise TrainingError(
            "Give either a campaign to take prompts from or a list of prompts.", {"prompts": "One source, not both."}
        )
    prompt_rows = _prompt_rows(source_campaign, prompts or [])
    if not prompt_rows:
        raise TrainingError("There are no prompts to answer.", {"prompts": "No prompts."})
    with tempfile.TemporaryDirectory(prefix="generate-check-") as work:
        prompts_file = _write_jsonl(Path(work) / "prompts.jsonl", prompt_rows[:20])
        for artifact in _models_of(model, compare_with):
            try:
                check_spec(_spec(artifact, params, prompts_file, Path(work) / "out"), field="params")
            except LaunchError as error:
                raise TrainingError(error.message, {error.field: error.message}) from None
    with transaction.atomic():
        job = GenerationJob.objects.create(
            model=model,
            compare_with=compare_with,
            source_campaign=source_campaign,
            prompts=[] if source_campaign else prompt_rows,
            params={**params, "project_id": (project or source_campaign.project).pk},
            campaign_name=campaign_name.strip()[:200],
            launched_by=launched_by,
            # Answers to write, over every model: the page shows 0 / N from the start.
            total_steps=len(prompt_rows) * len(_models_of(model, compare_with)),
        )
        audit_record(actor=launched_by, action=Action.GENERATION_CREATE, target=job, prompts=len(prompt_rows))
        notify_generation(job)
    return job


def generation_workdir(job: GenerationJob) -> Path:
    return Path(settings.TRAINING_DIR) / "generation" / str(job.pk)


def generation_prepare(*, job: GenerationJob) -> list[Path]:
    """Write the prompts and one spec per model; returns the spec paths, the new model's first."""
    workdir = generation_workdir(job)
    prompt_rows = _prompt_rows(job.source_campaign, job.prompts)
    prompts_file = _write_jsonl(workdir / "prompts.jsonl", prompt_rows)
    params = {k: v for k, v in job.params.items() if k in GENERATION_FIELDS}
    artifacts = _models_of(job.model, job.compare_with)
    spec_paths, specs = [], []
    for index, artifact in enumerate(artifacts):
        spec = _spec(artifact, params, prompts_file, workdir / f"output-{index}")
        # One progress for the job: each model's run counts on from the runs before it.
        spec["progress_offset"], spec["progress_total"] = index * len(prompt_rows), len(artifacts) * len(prompt_rows)
        path = workdir / f"spec-{index}.json"
        path.write_text(json.dumps(spec, indent=2))
        spec_paths.append(path)
        specs.append(spec)
    job.spec, job.workdir = specs[0], str(workdir)
    job.step, job.total_steps, job.eta_s = 0, len(artifacts) * len(prompt_rows), None
    job.save(update_fields=["spec", "workdir", "step", "total_steps", "eta_s"])
    notify_generation(job)
    return spec_paths


@transaction.atomic
def generation_job_succeed(*, job: GenerationJob, engine_results: list[dict[str, Any]], log_tail: str) -> Campaign:
    """Create the new campaign from the candidates and import them as its tasks, all or nothing."""
    workdir = Path(job.workdir)
    candidates = [_read_jsonl(workdir / f"output-{index}" / "candidates.jsonl") for index in range(len(engine_results))]
    source = job.source_campaign
    if job.compare_with_id is not None:
        tasks = _ab_tasks(candidates[0], candidates[1], job=job)
        schema = _ab_schema(source)
    else:
        tasks = _merge_candidates(candidates)
    if not tasks:
        raise TrainingError("The model produced no usable answers (every candidate was empty).")
    response_count = len(tasks[0]["responses"])
    if job.compare_with_id is None:
        schema = PAIRWISE_SCHEMA if response_count == 2 else RANKING_SCHEMA
        if source is not None and source.schema.check_response_count(response_count) is None:
            schema = source.question_schema
    project = Project.objects.get(pk=job.params["project_id"])
    try:
        campaign = campaign_create(
            project=project,
            created_by=job.launched_by or project.created_by,
            name=job.campaign_name,
            question_schema=schema,
            guidelines=source.guidelines if source is not None else "",
        )
        tasks_file = _write_jsonl(workdir / "tasks.jsonl", tasks)
        imported = tasks_import_file(campaign=campaign, path=tasks_file)
    except LabelingError as error:
        raise TrainingError(f"The answers could not become a campaign: {error.message}") from None
    job.status, job.finished_at, job.log_tail, job.campaign = JobStatus.SUCCEEDED, timezone.now(), log_tail, campaign
    job.result = {"engine": engine_results, "tasks": imported.created, "responses_per_task": response_count}
    job.step = job.total_steps
    job.save(update_fields=["status", "finished_at", "log_tail", "campaign", "result", "step"])
    notify_generation(job)
    return campaign


@transaction.atomic
def generation_campaign_start(
    *, job: GenerationJob, reviewers: list[str] | None = None, actor: AbstractBaseUser | None = None
) -> Campaign:
    """Start the campaign a job made, in one step, set up like the campaign its prompts came from.

    From that source campaign it takes the reviewer pool (unless ``reviewers`` names one: usernames
    of active reviewers), the guidelines, the overlap, the lease, and the gold tasks that fit the new
    campaign's question, copied with their answers, together with the source's gold rate (0 when
    none fit: a gold rate without gold tasks would measure nothing). Prompts imported as a list
    have no source: then ``reviewers`` is required. The questions stay those the job set (the
    pairwise A/B question for a job with ``compare_with``). The campaign then becomes active.

    All or nothing. Locks the job's row, then the campaign's: of two managers starting it at once,
    the second gets a ``Conflict``, as does a start of a campaign that is no longer a draft.
    """
    job = GenerationJob.objects.select_related("source_campaign").select_for_update(of=("self",)).get(pk=job.pk)
    if job.status != JobStatus.SUCCEEDED or job.campaign_id is None:
        raise Conflict(f"The job has no campaign to start yet: it is {job.get_status_display().lower()}.")
    campaign = Campaign.objects.select_for_update().get(pk=job.campaign_id)
    if campaign.status != CampaignStatus.DRAFT:
        raise Conflict(
            f"“{campaign.name}” has already been started: it is {campaign.get_status_display().lower()}.",
            {"campaign": "Already started."},
        )
    source = job.source_campaign
    if reviewers is None and source is not None:
        # Its pool as it stands: people who left the reviewers group since are not carried over.
        pool = source.reviewers.filter(is_active=True, groups__name=Role.REVIEWER).distinct().order_by("username")
        reviewers = list(pool.values_list("username", flat=True))
    if not reviewers:
        where = "its prompts came from" if source is not None else "of its prompts (they were a list)"
        raise TrainingError(
            f"Choose the reviewers: the campaign {where} has no reviewer pool to copy.",
            {"reviewers": "Choose at least one reviewer."},
        )
    settings: dict[str, Any] = {}
    if source is not None:
        gold_copied = _copy_gold_tasks(source=source, campaign=campaign)
        settings = {
            "guidelines": source.guidelines,
            "overlap": source.overlap,
            "lease_seconds": source.lease_seconds,
            "gold_rate": source.gold_rate if gold_copied else 0.0,
        }
    audit_record(actor=actor, action=Action.REVIEW_START, target=job, campaign=campaign.pk)
    if settings:
        campaign = campaign_update(campaign=campaign, actor=actor, **settings)
    campaign_set_reviewers(campaign=campaign, usernames=reviewers, actor=actor)
    return campaign_set_status(campaign=campaign, status=CampaignStatus.ACTIVE, actor=actor)


@transaction.atomic
def generation_job_fail(*, job: GenerationJob, error: str, log_tail: str = "") -> GenerationJob:
    job.status, job.finished_at, job.error = JobStatus.FAILED, timezone.now(), error
    job.log_tail = log_tail or job.log_tail
    job.save(update_fields=["status", "finished_at", "error", "log_tail"])
    notify_generation(job)
    return job


@transaction.atomic
def generation_job_mark_cancelled(*, job: GenerationJob, log_tail: str = "") -> GenerationJob:
    job.status, job.finished_at, job.error, job.log_tail = JobStatus.CANCELLED, timezone.now(), "Cancelled.", log_tail
    job.save(update_fields=["status", "finished_at", "error", "log_tail"])
    notify_generation(job)
    return job


@transaction.atomic
def generation_job_cancel(*, job: GenerationJob, actor: AbstractBaseUser | None = None) -> GenerationJob:
    """Cancel a job: a running one is asked to stop, a queued or interrupted one stops now. Locks its row."""
    job = GenerationJob.objects.select_for_update().get(pk=job.pk)
    if job.status in FINAL_STATUSES:
        raise Conflict(f"The job already {job.status}; there is nothing to cancel.")
    audit_record(
        actor=actor, action=Action.GENERATION_CANCEL, target=job, changes={"status": (job.status, "cancelled")}
    )
    if job.status == JobStatus.RUNNING:
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested"])
        notify_generation(job)
        return job
    return generation_job_mark_cancelled(job=job)


@transaction.atomic
def generation_job_resume(*, job: GenerationJob, actor: AbstractBaseUser | None = None) -> GenerationJob:
    """Queue an interrupted, cancelled or failed job again; generation starts over. Locks its row."""
    job = GenerationJob.objects.select_for_update().get(pk=job.pk)
    if job.status not in RESUMABLE_STATUSES:
        raise Conflict(f"Only interrupted, cancelled or failed jobs can run again; this one is {job.status}.")
    audit_record(actor=actor, action=Action.GENERATION_RESUME, target=job, changes={"status": (job.status, "queued")})
    return generation_job_queue_again(job=job)


def generation_job_queue_again(*, job: GenerationJob, automatically: bool = False) -> GenerationJob:
    """Queue the job again, by hand or by the worker's auto-resume policy (``automatically``:
    counted in ``auto_resumes``); generation starts over. Runs inside the caller's transaction,
    with the job's row locked."""
    job.status, job.cancel_requested, job.error, job.finished_at = JobStatus.QUEUED, False, "", None
    job.step, job.eta_s = 0, None  # it starts over
    fields = ["status", "cancel_requested", "error", "finished_at", "step", "eta_s"]
    if automatically:
        job.auto_resumes += 1
        fields.append("auto_resumes")
    job.save(update_fields=fields)
    notify_generation(job)
    return job


# --- helpers --------------------------------------------------------------------------------------


def _prompt_rows(source_campaign: Campaign | None, prompts: list[Any]) -> list[dict[str, Any]]:
    """``{id, prompt, meta}`` rows; every row gets an id, so the answers of two models can be paired."""
    if source_campaign is not None:
        tasks = source_campaign.tasks.filter(is_gold=False).order_by("id")
        return [
            {"id": task.external_id or f"task-{task.pk}", "prompt": task.prompt, "meta": {"source_task": task.pk}}
            for task in tasks
        ]
    rows = []
    for index, item in enumerate(prompts):
        row = dict(item) if isinstance(item, dict) else {"prompt": item}
        prompt = row.get("prompt")
        if not (isinstance(prompt, str) and prompt.strip()) and not (isinstance(prompt, list) and prompt):
            raise TrainingError(
                f"Prompt {index + 1} is empty or not text/messages.", {"prompts": f"Item {index + 1} is not a prompt."}
            )
        rows.append({"id": str(row.get("id") or f"p{index + 1}"), "prompt": prompt, "meta": row.get("meta") or {}})
    return rows


def _models_of(model: ModelArtifact, compare_with: ModelArtifact | None) -> list[ModelArtifact]:
    """The models that answer the prompts, the new one first."""
    return [model] if compare_with is None else [model, compare_with]


def _spec(artifact: ModelArtifact, params: dict[str, Any], prompts_file: Path, output_dir: Path) -> dict[str, Any]:
    spec = {
        "stage": "generate",
        "model": artifact.path,
        "output_dir": str(output_dir),
        "prompts": str(prompts_file),
        "model_name": artifact.name,
        **params,
    }
    if artifact.gguf_file:
        spec["gguf_file"] = artifact.gguf_file
    return spec


def _merge_candidates(candidates: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One task per prompt that every model answered, holding all their responses (the new model's first)."""
    first, others = candidates[0], [{task["id"]: task for task in rows} for rows in candidates[1:]]
    tasks = []
    for task in first:
        matches = [other.get(task["id"]) for other in others]
        if all(matches):
            responses = [*task["responses"], *(r for match in matches for r in match["responses"])]
            tasks.append({**task, "responses": responses})
    return tasks


def _ab_tasks(new: list[dict[str, Any]], old: list[dict[str, Any]], *, job: GenerationJob) -> list[dict[str, Any]]:
    """Pairwise A/B tasks: candidate i of the new model against candidate i of the old, per prompt.

    Prompts that only one model answered are left out. The two answers' order is drawn per task
    (seeded by the job, so a job's campaign is reproducible), and each answer's ``meta`` gets its
    model's id (``model_id``). A prompt with K candidates gives K tasks, with ids ``<prompt id>#i``.
    """
    rng = random.Random(job.pk)  # noqa: S311 - the answers' order, not a secret
    old_by_id = {task["id"]: task for task in old}
    tasks = []
    for task in new:
        match = old_by_id.get(task["id"])
        if match is None:
            continue
        pairs = list(zip(task["responses"], match["responses"], strict=False))
        for index, (new_answer, old_answer) in enumerate(pairs):
            responses = [
                {**new_answer, "meta": {**new_answer.get("meta", {}), "model_id": job.model_id}},
                {**old_answer, "meta": {**old_answer.get("meta", {}), "model_id": job.compare_with_id}},
            ]
            rng.shuffle(responses)
            meta = {**task.get("meta", {}), "prompt_id": task["id"], "candidate": index}
            task_id = task["id"] if len(pairs) == 1 else f"{task['id']}#{index + 1}"
            tasks.append({**task, "id": task_id, "responses": responses, "meta": meta})
    return tasks


def _ab_schema(source: Campaign | None) -> dict[str, Any]:
    """The A/B question, plus the source campaign's questions that are not comparisons (flags, why).

    A pairwise question of the source keeps its label and strengths, with ties and "both bad" allowed.
    """
    question, extras = dict(AB_QUESTION), []
    if source is not None:
        for asked in source.question_schema["questions"]:
            if asked["type"] == "pairwise":
                question = {**asked, "allow_tie": True, "allow_both_bad": True}
            elif asked["type"] != "ranking":
                extras.append(asked)
    if any(extra["id"] == question["id"] for extra in extras):
        question["id"] = "ab_preference"
    return {"questions": [question, *extras]}


def _copy_gold_tasks(*, source: Campaign, campaign: Campaign) -> int:
    """Import the source's gold tasks that fit ``campaign``'s questions, with their answers; returns how many."""
    schema = campaign.schema
    rows = []
    for task in source.tasks.filter(is_gold=True).order_by("id").prefetch_related("responses"):
        responses = [{"text": r.text, "model": r.model_name, "meta": r.meta} for r in task.responses.all()]
        if schema.check_response_count(len(responses)) is not None:
            continue
        rows.append(
            {
                "id": f"gold/{task.external_id or task.pk}",
                "prompt": task.prompt,
                "responses": responses,
                "meta": {**task.meta, "copied_from_task": task.pk},
                "gold": task.gold,
            }
        )
    if not rows:
        return 0
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    return tasks_import(campaign=campaign, stream=io.BytesIO(data), file_format="jsonl", size=len(data)).created


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    write_rows(rows, path)
    return path


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise TrainingError(f"The engine wrote no {path.name}.")
    return list(read_rows(path))
