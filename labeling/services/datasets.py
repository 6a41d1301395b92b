"""Building preference dataset snapshots from campaigns' judgements, and exporting them.

The ORM loads plain records around the pure builder in ``labeling.datasets``. A snapshot's file
is written (atomically, named by its content hash) before its row is saved, inside one
transaction, so a failed build leaves no row, and a row always has its file.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from labeling import selectors
from labeling.datasets import (
    BuildParams,
    DatasetError,
    build_rows,
    content_hash,
    export_rows,
    write_rows,
)
from labeling.errors import LabelingError
from labeling.models import Campaign, PreferenceDataset
from rlhf_platform.audit import Action, audit_record


def dataset_params(**fields: Any) -> BuildParams:
    """``BuildParams`` from the fields a form, the API or a command parsed; bad values as a ``LabelingError``."""
    try:
        return BuildParams(**fields)
    except DatasetError as error:
        raise LabelingError(error.message, error.errors) from None


def dataset_build(
    *,
    campaigns: list[Campaign],
    params: BuildParams,
    created_by: AbstractBaseUser,
    name: str = "",
    exclude_flagged_reviewers: bool = False,
    on_phase: Callable[[str], None] | None = None,
) -> tuple[PreferenceDataset, bool]:
    """Build (or find) the snapshot of ``campaigns`` under ``params``; returns it and whether it is new.

    With ``exclude_flagged_reviewers``, the reviewers the quality table flags are added to
    ``params.exclude_reviewers``, so the snapshot records exactly who was left out.
    ``on_phase(name)``, if given, is called as each of ``BUILD_PHASES`` starts (a build job's progress).
    """
    phase = on_phase or (lambda name: None)
    if not campaigns:
        raise LabelingError("Choose at least one campaign.", {"campaigns": "This field is required."})
    if exclude_flagged_reviewers:
        flagged = selectors.flagged_reviewer_ids(campaigns=campaigns)
        params = replace(params, exclude_reviewers=tuple(sorted({*params.exclude_reviewers, *flagged})))
    phase("read")
    inputs = selectors.load_build_inputs(campaigns)
    phase("aggregate")
    try:
        result = build_rows(inputs=inputs, params=params)
    except DatasetError as error:
        raise LabelingError(error.message, error.errors) from None
    digest = content_hash(result.rows, params)
    existing = PreferenceDataset.objects.filter(content_hash=digest).first()
    if existing is not None:
        return existing, False
    file_name = f"{params.kind}-{digest[:16]}.jsonl"
    phase("write")
    try:
        with transaction.atomic():
            dataset = PreferenceDataset.objects.create(
                name=(name or ", ".join(c.name for c in campaigns))[:200],
                kind=params.kind,
                method=params.method,
                parameters=params.to_json(),
                content_hash=digest,
                counts=result.counts,
                file_name=file_name,
                created_by=created_by,
            )
            dataset.campaigns.set(campaigns)
            audit_record(
                actor=created_by,
                action=Action.DATASET_BUILD,
                target=dataset,
                campaigns=[campaign.pk for campaign in campaigns],
                parameters=dataset.parameters,
                counts=dataset.counts,
            )
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
