"""Imports and dataset builds as jobs of ``manage.py worker``, so no request waits for them.

A request checks what it can cheaply (format, size, campaign state, build parameters), stores an
import's upload under ``DATA_JOBS_DIR`` and queues a ``DataJob``; it answers at once. The worker's
data loop claims the oldest queued job (``data_job_run_next``), runs the same services the
commands use (``tasks_import``, ``dataset_build``), and records the outcome on the row.

Progress goes to a small JSON file per job, replaced atomically, and read by the status views
(``labeling.selectors.data_job_progress``): an import is one transaction, which on SQLite holds
the database's write lock to its end, so progress written to the row from inside it would stay
invisible until the commit, and a write from another connection would wait for it. A file works
the same on both databases. A heartbeat thread keeps touching that file, so a job whose worker
died is recognised by the file's age (``data_jobs_fail_stale``).

Locks: a claim is a short transaction with ``select_for_update(skip_locked=True)`` where the
database has it (SQLite's IMMEDIATE transactions serialize claims instead); every other change
is made by the worker that holds the job, or on a job no worker holds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.utils import timezone

from labeling.datasets import BUILD_PHASES, BuildParams
from labeling.errors import LabelingError
from labeling.models import Campaign, CampaignStatus, DataJob
from labeling.services.datasets import dataset_build
from labeling.services.imports import FORMATS, ImportRejected, max_import_bytes, tasks_import
from rlhf_platform.audit import Action, audit_record
from rlhf_platform.errors import UserError

logger = logging.getLogger(__name__)

UPLOAD_CHUNK_BYTES = 1 << 20
STALE_IMPORT = "The worker stopped while importing this file; nothing was imported. Import the file again."
STALE_BUILD = "The worker stopped while building this dataset; nothing was saved. Build it again."


# --- queueing (in the request) ------------------------------------------------------------------


def import_job_create(
    *, campaign: Campaign, upload: UploadedFile, file_format: str, created_by: AbstractBaseUser
) -> DataJob:
    """Store ``upload`` and queue its import into ``campaign``; refuses at once what needs no reading.

    The file is copied in chunks, never whole in memory; if queueing fails, the copy is removed.
    """
    if campaign.status == CampaignStatus.CLOSED:
        raise ImportRejected("The campaign is closed; it takes no more tasks.")
    if file_format not in FORMATS:
        raise ImportRejected(f"Unknown format {file_format!r}: use one of {', '.join(FORMATS)}.")
    limit = max_import_bytes()
    if upload.size > limit:
        raise ImportRejected(
            f"The file is {upload.size / 2**20:.1f} MiB; imports are limited to {limit / 2**20:.0f} MiB. "
            "Split it into several files."
        )
    if upload.size == 0:
        raise ImportRejected("The file is empty.")
    directory = Path(settings.DATA_JOBS_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"upload-{uuid.uuid4().hex}.{file_format}"
    try:
        with path.open("wb") as stored:
            for chunk in upload.chunks(UPLOAD_CHUNK_BYTES):
                stored.write(chunk)
        return DataJob.objects.create(
            kind=DataJob.Kind.IMPORT,
            campaign=campaign,
            file_path=str(path),
            file_format=file_format,
            file_name=(upload.name or "")[-255:],
            file_size=upload.size,
            progress_total=upload.size,
            created_by=created_by,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def dataset_build_job_create(
    *,
    campaigns: list[Campaign],
    params: BuildParams,
    created_by: AbstractBaseUser,
    name: str = "",
    exclude_flagged_reviewers: bool = False,
) -> DataJob:
    """Queue a build of ``campaigns`` under ``params`` (already checked by ``dataset_params``)."""
    if not campaigns:
        raise LabelingError("Choose at least one campaign.", {"campaigns": "This field is required."})
    return DataJob.objects.create(
        kind=DataJob.Kind.DATASET_BUILD,
        parameters={
            "campaigns": [campaign.pk for campaign in campaigns],
            "name": name,
            "params": params.to_json(),
            "exclude_flagged_reviewers": exclude_flagged_reviewers,
        },
        progress_total=len(BUILD_PHASES),
        created_by=created_by,
    )


# --- running (in the worker) --------------------------------------------------------------------


def data_job_claim_next(*, worker: str) -> DataJob | None:
    """Take the oldest queued data job and mark it running for ``worker``; None when there is none."""
    with transaction.atomic():
        queued = DataJob.objects.filter(status=DataJob.Status.QUEUED).order_by("created_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            queued = queued.select_for_update(skip_locked=True)
        job = queued.first()
        if job is None:
            return None
        now = timezone.now()
        job.status, job.worker, job.heartbeat_at, job.started_at = DataJob.Status.RUNNING, worker, now, now
        job.save(update_fields=["status", "worker", "heartbeat_at", "started_at"])
    return job


def data_job_run_next(*, worker: str, heartbeat_s: float | None = None) -> DataJob | None:
    """Claim the next queued data job and run it to its end; returns it, or None when none was queued."""
    job = data_job_claim_next(worker=worker)
    if job is not None:
        data_job_run(job=job, heartbeat_s=heartbeat_s)
    return job


def data_job_run(*, job: DataJob, heartbeat_s: float | None = None) -> DataJob:
    """Run a claimed job; it ends succeeded or failed, and its stored upload and progress file are removed.

    A ``UserError`` (a bad row, a campaign gone) fails the job with its message and field or line
    errors. Anything else is a bug: it is logged with its traceback and fails the job, so the worker
    goes on with the next one.
    """
    progress = ProgressFile(job.progress_path)
    try:
        with progress.heartbeat(heartbeat_s if heartbeat_s is not None else settings.TRAINING_HEARTBEAT_S):
            if job.kind == DataJob.Kind.IMPORT:
                _run_import(job, progress)
            else:
                _run_build(job, progress)
    except UserError as error:
        _finish(job, status=DataJob.Status.FAILED, progress=progress, error=error.message, errors=error.errors)
    except Exception as error:
        logger.exception("%s failed", job)
        _finish(job, status=DataJob.Status.FAILED, progress=progress, error=f"Worker error: {type(error).__name__}.")
    finally:
        _remove_inputs(job)
    return job


def _run_import(job: DataJob, progress: ProgressFile) -> None:
    if job.campaign_id is None:
        raise ImportRejected("The campaign was deleted before its import ran; nothing was imported.")
    path = Path(job.file_path)
    if not path.is_file():
        raise ImportRejected("The uploaded file is gone from the server; nothing was imported. Import it again.")

    def on_progress(rows_done: int, bytes_read: int) -> None:
        progress.write(done=bytes_read, total=job.file_size, rows=rows_done)

    # One transaction around the import (a savepoint inside it), the job's result and the audit
    # entry: the job says "succeeded" exactly when the tasks are there.
    with transaction.atomic(), path.open("rb") as stream:
        campaign = Campaign.objects.filter(pk=job.campaign_id).first()
        if campaign is None:
            raise ImportRejected("The campaign was deleted before its import ran; nothing was imported.")
        result = tasks_import(
            campaign=campaign, stream=stream, file_format=job.file_format, size=job.file_size, on_progress=on_progress
        )
        counts = {
            "created": result.created,
            "skipped_duplicates": result.skipped_duplicates,
            "prompt_only": result.prompt_only,
            "rows": result.rows,
        }
        audit_record(
            actor=job.created_by,
            action=Action.TASKS_IMPORT,
            target=campaign,
            file_name=job.file_name,
            file_size=job.file_size,
            counts=counts,
        )
        _finish(job, status=DataJob.Status.SUCCEEDED, progress=progress, result=counts, rows=result.rows)


def _run_build(job: DataJob, progress: ProgressFile) -> None:
    parameters = job.parameters
    campaigns = list(Campaign.objects.filter(pk__in=parameters["campaigns"]).order_by("pk"))
    missing = sorted(set(parameters["campaigns"]) - {campaign.pk for campaign in campaigns})
    if missing:
        raise LabelingError(
            "A campaign of this build was deleted before it ran; nothing was built.",
            {"campaigns": f"No campaign with id {', '.join(map(str, missing))}."},
        )
    phases = list(BUILD_PHASES)

    def on_phase(name: str) -> None:
        progress.write(done=phases.index(name), total=len(phases), phase=name)

    dataset, created = dataset_build(
        campaigns=campaigns,
        params=BuildParams.from_json(parameters["params"]),
        created_by=job.created_by,
        name=parameters.get("name", ""),
        exclude_flagged_reviewers=parameters.get("exclude_flagged_reviewers", False),
        on_phase=on_phase,
    )
    job.dataset = dataset
    result = {"dataset": dataset.pk, "created": created, "counts": dataset.counts}
    _finish(job, status=DataJob.Status.SUCCEEDED, progress=progress, result=result, extra_fields=["dataset"])


def _finish(
    job: DataJob,
    *,
    status: DataJob.Status,
    progress: ProgressFile,
    result: dict[str, Any] | None = None,
    error: str = "",
    errors: dict[str, str] | None = None,
    rows: int | None = None,
    extra_fields: list[str] | None = None,
) -> None:
    """Record how a job ended, with the last progress its file had (all of it when it succeeded)."""
    last = progress.read() or {}
    job.status, job.finished_at, job.heartbeat_at = status, timezone.now(), timezone.now()
    job.result, job.error, job.errors = result or {}, error, errors or {}
    job.progress_done = job.progress_total if status == DataJob.Status.SUCCEEDED else int(last.get("done", 0))
    job.rows_done = rows if rows is not None else int(last.get("rows", 0))
    fields = ["status", "finished_at", "heartbeat_at", "result", "error", "errors", "progress_done", "rows_done"]
    job.save(update_fields=fields + (extra_fields or []))


def _remove_inputs(job: DataJob) -> None:
    if job.file_path:
        Path(job.file_path).unlink(missing_ok=True)
    job.progress_path.unlink(missing_ok=True)


def data_jobs_fail_stale(*, stale_after_s: float) -> int:
    """Fail running data jobs whose worker went silent (no heartbeat for ``stale_after_s``); returns how many.

    The heartbeat is the progress file's modification time (or the claim, before the first
    beat). A job is failed only if it is still running under the same claim, so a worker that
    comes back to life is never overruled. Nothing of a stale job was kept: an import is one
    transaction, and a build saves its snapshot in one at its very end.
    """
    cutoff = timezone.now() - dt.timedelta(seconds=stale_after_s)
    count = 0
    for job in DataJob.objects.filter(status=DataJob.Status.RUNNING, heartbeat_at__lt=cutoff):
        beat = ProgressFile(job.progress_path).modified_at()
        if beat is not None and beat >= cutoff:
            continue
        message = STALE_IMPORT if job.kind == DataJob.Kind.IMPORT else STALE_BUILD
        changed = DataJob.objects.filter(pk=job.pk, status=DataJob.Status.RUNNING, worker=job.worker).update(
            status=DataJob.Status.FAILED, error=message, finished_at=timezone.now()
        )
        if changed:
            _remove_inputs(job)
            count += 1
    return count


def data_jobs_fail_of(*, worker: str) -> int:
    """At a worker's start: fail the data jobs still running under its name; returns how many.

    Its previous process is dead (``training.services.workers`` refuses a name a live process
    holds), so they are failed at once instead of after ``stale_after_s``. As in
    ``data_jobs_fail_stale``, nothing of them was kept; the message says to run them again.
    """
    count = 0
    for job in DataJob.objects.filter(status=DataJob.Status.RUNNING, worker=worker):
        message = STALE_IMPORT if job.kind == DataJob.Kind.IMPORT else STALE_BUILD
        changed = DataJob.objects.filter(pk=job.pk, status=DataJob.Status.RUNNING, worker=worker).update(
            status=DataJob.Status.FAILED, error=message, finished_at=timezone.now()
        )
        if changed:
            _remove_inputs(job)
            count += 1
    return count


class ProgressFile:
    """A running job's progress as a small JSON file, replaced atomically so a reader never sees half of it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, **progress: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_text(json.dumps(progress))
        os.replace(partial, self.path)

    def read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None

    def modified_at(self) -> dt.datetime | None:
        try:
            return dt.datetime.fromtimestamp(self.path.stat().st_mtime, tz=dt.UTC)
        except FileNotFoundError:
            return None

    def touch(self) -> None:
        if self.read() is None:
            self.write(done=0)
        else:
            os.utime(self.path)

    @contextlib.contextmanager
    def heartbeat(self, interval_s: float) -> Iterator[None]:
        """Touch the file every ``interval_s`` while the body runs: the job's sign of life, without the database."""
        self.touch()
        stopped = threading.Event()

        def beat() -> None:
            while not stopped.wait(interval_s):
                try:
                    self.touch()
                except OSError:
                    logger.warning("heartbeat of %s failed; trying again", self.path, exc_info=True)

        thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{self.path.stem}")
        thread.start()
        try:
            yield
        finally:
            stopped.set()
            thread.join()
