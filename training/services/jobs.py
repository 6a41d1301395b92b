"""Worker-side transitions shared by training runs and generation jobs: claim, heartbeat, interrupt.

The database is the queue. A claim is a short transaction: ``select_for_update(skip_locked=True)``
on PostgreSQL, so two workers never take the same row; SQLite has no row locks, but its IMMEDIATE
transactions (settings) serialize claims on the whole database.
"""

from __future__ import annotations

import datetime as dt
from typing import TypeVar

from django.db import connection, transaction
from django.utils import timezone

from training.models import GenerationJob, Job, JobStatus, TrainingRun
from training.realtime import notify_generation, notify_log, notify_run
from training.services.rounds import round_mark_running

J = TypeVar("J", bound=Job)


def notify(job: Job, **extra) -> None:
    if isinstance(job, TrainingRun):
        notify_run(job, **extra)
    else:
        notify_generation(job)


def job_claim_next(*, model: type[J], worker: str) -> J | None:
    """Take the oldest queued row of ``model`` and mark it running for ``worker``; None when the queue is empty."""
    with transaction.atomic():
        queued = model.objects.filter(status=JobStatus.QUEUED).order_by("created_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            queued = queued.select_for_update(skip_locked=True)
        job = queued.first()
        if job is None:
            return None
        now = timezone.now()
        job.status, job.worker, job.heartbeat_at, job.started_at = JobStatus.RUNNING, worker, now, now
        job.save(update_fields=["status", "worker", "heartbeat_at", "started_at"])
        notify(job)
        if isinstance(job, TrainingRun) and job.round_id is not None:
            round_mark_running(round_id=job.round_id)
    return job


def job_heartbeat(*, job: Job, log_tail: str) -> bool:
    """Record that the worker is alive and the log so far; returns whether a cancel was asked for.

    One UPDATE on the row; no lock needed (only the worker that holds the job writes these fields).
    """
    model = type(job)
    updated = model.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        heartbeat_at=timezone.now(), log_tail=log_tail
    )
    # Live pages get the log through the channel layer, only when it changed (a beat every few seconds).
    if updated and log_tail != job.log_tail:
        job.log_tail = log_tail
        notify_log(job, log_tail=log_tail)
    return bool(model.objects.filter(pk=job.pk).values_list("cancel_requested", flat=True).first())


def job_record_progress(*, job: Job, event: dict) -> None:
    """Store a ``progress`` event: step, total steps, epoch, tokens seen, time left."""
    job.step = int(event.get("step") or 0)
    job.total_steps = max(int(event.get("total_steps") or 0), 0)
    job.tokens_seen = int(event.get("tokens_seen") or 0)
    job.eta_s = event.get("eta_s")
    fields = ["step", "total_steps", "tokens_seen", "eta_s", "heartbeat_at"]
    if event.get("epoch") is not None:
        job.epoch = float(event["epoch"])
        fields.append("epoch")
    job.heartbeat_at = timezone.now()
    with transaction.atomic():
        job.save(update_fields=fields)
        notify(job)


def jobs_mark_interrupted(*, stale_after_s: float) -> int:
    """Mark running runs and jobs whose worker went silent as interrupted; returns how many.

    A worker calls this when it starts. Each row is updated only if it is still running with the
    same stale heartbeat, so a worker that comes back to life is never overruled.
    """
    cutoff = timezone.now() - dt.timedelta(seconds=stale_after_s)
    count = 0
    for model in (TrainingRun, GenerationJob):
        for job in model.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff):
            since = job.heartbeat_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            with transaction.atomic():
                updated = model.objects.filter(pk=job.pk, status=JobStatus.RUNNING, heartbeat_at=job.heartbeat_at)
                changed = updated.update(
                    status=JobStatus.INTERRUPTED,
                    error=f"The worker stopped (no heartbeat since {since}); resume to go on from its last checkpoint.",
                )
                if changed:
                    job.refresh_from_db()
                    notify(job)
                    count += 1
    return count
