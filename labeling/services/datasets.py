"""Building preference dataset snapshots from campaigns' judgements, and exporting them.

The ORM loads plain records around the pure builder in ``labeling.datasets``. A snapshot's file
is written (atomically, named by its content hash) before its row is saved, inside one
transaction, so a failed build leaves no row, and a row always has its file.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from labeling.aggregation import JudgementRecord
from labeling.datasets import (
    BuildParams,
    DatasetError,
    ResponseInfo,
    TaskInfo,
    build_preference_rows,
    content_hash,
    export_rows,
    write_rows,
)
from labeling.errors import LabelingError
from labeling.models import Campaign, Judgement, PreferenceDataset, Response, Task

COMPARATIVE_ORDER = ("pairwise", "ranking", "likert")


def _comparative_question(campaign: Campaign) -> tuple[str, str] | None:
    """The question a dataset is built from: pairwise or ranking first, else likert."""
    questions = {q.type: q.id for q in reversed(campaign.schema.questions)}
    for question_type in COMPARATIVE_ORDER:
        if question_type in questions:
            return questions[question_type], question_type
    return None


def _flag_question(campaign: Campaign) -> str | None:
    return next((q.id for q in campaign.schema.questions if q.type == "flags"), None)


def load_build_inputs(
    campaigns: Iterable[Campaign],
) -> tuple[list[JudgementRecord], dict[int, TaskInfo], dict[int, ResponseInfo], set[int]]:
    """Judgement records, tasks, responses and flagged response ids of the campaigns (retractions left out)."""
    records: list[JudgementRecord] = []
    tasks: dict[int, TaskInfo] = {}
    responses: dict[int, ResponseInfo] = {}
    flagged: set[int] = set()
    for campaign in campaigns:
        question = _comparative_question(campaign)
        if question is None:
            continue
        question_id, question_type = question
        flag_id = _flag_question(campaign)
        response_ids: dict[int, list[int]] = {}
        for response in Response.objects.filter(task__campaign=campaign).values("pk", "task_id", "text", "model_name"):
            responses[response["pk"]] = ResponseInfo(response["pk"], response["text"], response["model_name"])
            response_ids.setdefault(response["task_id"], []).append(response["pk"])
        for task in Task.objects.filter(campaign=campaign, response_count__gte=2).values(
            "pk", "prompt", "external_id", "is_gold", "gold"
        ):
            tasks[task["pk"]] = TaskInfo(
                task_id=task["pk"],
                prompt=task["prompt"],
                group_id=task["external_id"] or f"task-{task['pk']}",
                is_gold=task["is_gold"],
                gold=task["gold"],
                response_ids=tuple(response_ids.get(task["pk"], ())),
            )
        judgements = Judgement.objects.filter(task__campaign=campaign, retracted_at__isnull=True).values_list(
            "pk", "task_id", "reviewer_id", "answers", "shown_order"
        )
        for pk, task_id, reviewer_id, answers, shown_order in judgements.iterator(chunk_size=5000):
            task = tasks[task_id]
            records.append(
                JudgementRecord(
                    judgement_id=pk,
                    task_id=task_id,
                    reviewer_id=reviewer_id,
                    question_type=question_type,
                    answer=answers.get(question_id),
                    response_ids=task.response_ids,
                    shown_order=tuple(shown_order),
                    is_gold=task.is_gold,
                    gold=task.gold,
                )
            )
            if flag_id:
                flagged.update(int(r) for r, flags in (answers.get(flag_id) or {}).items() if flags)
    return records, tasks, responses, flagged


def dataset_build(
    *, campaigns: list[Campaign], params: BuildParams, created_by: AbstractBaseUser, name: str = ""
) -> tuple[PreferenceDataset, bool]:
    """Build (or find) the snapshot of ``campaigns`` under ``params``; returns it and whether it is new."""
    if not campaigns:
        raise LabelingError("Choose at least one campaign.", {"campaigns": "This field is required."})
    records, tasks, responses, flagged = load_build_inputs(campaigns)
    try:
        result = build_preference_rows(
            records=records, tasks=tasks, responses=responses, flagged_responses=flagged, params=params
        )
    except DatasetError as error:
        raise LabelingError(error.message, error.errors) from None
    digest = content_hash(result.rows, params)
    existing = PreferenceDataset.objects.filter(content_hash=digest).first()
    if existing is not None:
        return existing, False
    file_name = f"preferences-{digest[:16]}.jsonl"
    try:
        with transaction.atomic():
            dataset = PreferenceDataset.objects.create(
                name=(name or ", ".join(c.name for c in campaigns))[:200],
                method=params.method,
                parameters=params.to_json(),
                content_hash=digest,
                counts=result.counts,
                file_name=file_name,
                created_by=created_by,
            )
            dataset.campaigns.set(campaigns)
            write_rows(result.rows, dataset.path)
    except IntegrityError:
        # The same build finished first in another request; it is the same snapshot.
        return PreferenceDataset.objects.get(content_hash=digest), False
    return dataset, True


def dataset_export(*, dataset: PreferenceDataset, file_format: str, out: Path, split: str | None = None) -> Path:
    if not dataset.path.exists():
        raise LabelingError(f"The snapshot's file {dataset.path} is missing.", {"dataset": "File missing."})
    try:
        return export_rows(source=dataset.path, file_format=file_format, out=out, split=split)
    except DatasetError as error:
        raise LabelingError(error.message, error.errors) from None


def dataset_download_file(*, dataset: PreferenceDataset, file_format: str, split: str | None = None) -> tuple[Any, str]:
    """An open file with the export, and its download name; the file is already unlinked from disk.

    Formats other than JSONL are written to a temporary place first; the Hugging Face directory is
    zipped. Unlinking before returning leaves nothing behind however the download ends.
    """
    suffix = {"jsonl": ".jsonl", "parquet": ".parquet", "hf": ".zip"}.get(file_format)
    if suffix is None:
        raise LabelingError(f"Unknown format {file_format!r}.", {"format": "One of jsonl, parquet, hf."})
    download_name = f"{dataset.file_name.removesuffix('.jsonl')}{'-' + split if split else ''}{suffix}"
    with tempfile.TemporaryDirectory() as work:
        exported = dataset_export(dataset=dataset, file_format=file_format, out=Path(work) / "export", split=split)
        if file_format == "hf":
            exported = Path(shutil.make_archive(str(Path(work) / "export-zip"), "zip", root_dir=exported))
        handle = open(exported, "rb")  # noqa: SIM115 - handed to the response, which closes it
    # The directory is gone; the open handle keeps the data readable until the response closes it.
    return handle, download_name
