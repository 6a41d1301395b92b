"""Worker-side transitions shared by training runs and generation jobs: claim, heartbeat, interrupt,
and the auto-resume policy (``TRAINING_AUTO_RESUME``).

The database is the queue. A claim is a short transaction: ``select_for_update(skip_locked=True)``
on PostgreSQL, so two workers never take the same row; SQLite has no row locks, but its IMMEDIATE
transactions (settings) serialize claims on the whole database.
"""

from __future__ import annotations

import datetime as dt
from typing import TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from training.models import GenerationJob, Job, JobStatus, TrainingRun
from training.realtime import notify_generation, notify_log, notify_run
from training.services.checkpoints import record_checkpoints_at_stop
from training.services.generation import generation_job_queue_again
from training.services.rounds import round_mark_running, run_queue_again

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


def job_mark_interrupted(*, job: J, worker: str, reason: str, log_tail: str = "") -> J | None:
    """The job's worker stopped before the job ended: mark it interrupted, if ``worker`` still holds it
    and it is still running; returns it, or None when it was not (someone else's change won).

    ``reason`` says how the worker stopped; the message adds the run's last checkpoint (read from the
    disk: the one the engine wrote as it stopped may never have reached the worker as an event) and
    whether the auto-resume policy will queue it again. Locks the job's row.
    """
    model = type(job)
    with transaction.atomic():
        job = model.objects.select_for_update().filter(pk=job.pk, status=JobStatus.RUNNING, worker=worker).first()
        if job is None:
            return None
        fields = ["status", "error"]
        if log_tail:
            job.log_tail = log_tail
            fields.append("log_tail")
        if isinstance(job, TrainingRun):
            record_checkpoints_at_stop(job)
            fields += ["checkpoints", "step"]
        job.status, job.error = JobStatus.INTERRUPTED, _interrupted_message(job, reason)
        job.save(update_fields=fields)
        notify(job)
    return job


def _interrupted_message(job: Job, reason: str) -> str:
    if isinstance(job, TrainingRun):
        last = job.checkpoints[-1] if job.checkpoints else None
        where = f"its last checkpoint ({last['path']}, step {last['step']})" if last else "the start (no checkpoint)"
        message = f"{reason}; resume to go on from {where}."
    else:
        message = f"{reason}; run it again to start over."
    limit = settings.TRAINING_AUTO_RESUME
    if limit and job.auto_resumes >= limit:
        times = "once" if job.auto_resumes == 1 else f"{job.auto_resumes} times"
        message += (
            f" It was resumed automatically {times} already (TRAINING_AUTO_RESUME={limit}): a person decides now."
        )
    return message


def jobs_mark_interrupted(*, stale_after_s: float) -> list[Job]:
    """Mark running runs and jobs whose worker went silent as interrupted; returns them.

    Live workers call this every ``TRAINING_SWEEP_S``: the worker that held them died (another
    machine, a name no worker starts under again). Each row is changed only if it is still running
    under the same worker with the same stale heartbeat, so a worker that comes back to life is
    never overruled.
    """
    cutoff = timezone.now() - dt.timedelta(seconds=stale_after_s)
    interrupted = []
    for model in (TrainingRun, GenerationJob):
        for job in model.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff):
            since = job.heartbeat_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            reason = f"The worker {job.worker} stopped (no heartbeat since {since})"
            with transaction.atomic():
                if model.objects.select_for_update().filter(pk=job.pk, heartbeat_at=job.heartbeat_at).exists():
                    done = job_mark_interrupted(job=job, worker=job.worker, reason=reason)
                    if done is not None:
                        interrupted.append(done)
    return interrupted


def jobs_recover(*, worker: str) -> list[Job]:
    """At start-up: the runs and jobs still running under this worker's name were left by its previous
    process, which is dead (``worker_register`` made sure), so they are interrupted now, whatever
    their heartbeat says; returns them."""
    interrupted = []
    for model in (TrainingRun, GenerationJob):
        for job in model.objects.filter(status=JobStatus.RUNNING, worker=worker):
            reason = f"The worker {worker} stopped without ending it (it was killed or crashed, and restarted)"
            done = job_mark_interrupted(job=job, worker=worker, reason=reason)
            if done is not None:
                interrupted.append(done)
    return interrupted


def jobs_resume_automatically(*, jobs: list[Job]) -> list[Job]:
    """The auto-resume policy: queue each of ``jobs`` that is still interrupted again, unless it was
    resumed automatically ``TRAINING_AUTO_RESUME`` times already; returns those queued.

    A bound, so a run that kills its worker (memory, a driver) does not loop for ever. Locks each
    job's row (and a run's round).
    """
    limit = settings.TRAINING_AUTO_RESUME
    queued = []
    for job in jobs:
        model = type(job)
        with transaction.atomic():
            job = model.objects.select_for_update().filter(pk=job.pk, status=JobStatus.INTERRUPTED).first()
            if job is None or job.auto_resumes >= limit:
                continue
            if isinstance(job, TrainingRun):
                if job.depends_on_id is not None and job.depends_on.status != JobStatus.SUCCEEDED:
                    continue
                queued.append(run_queue_again(run=job, automatically=True))
            else:
                queued.append(generation_job_queue_again(job=job, automatically=True))
    return queued


def jobs_interrupted_of(*, worker: str) -> list[Job]:
    """The interrupted runs and jobs this worker held last (stopped with it): a restart resumes them."""
    return [
        job
        for model in (TrainingRun, GenerationJob)
        for job in model.objects.filter(status=JobStatus.INTERRUPTED, worker=worker)
    ]
