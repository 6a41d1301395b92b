"""The worker loop behind ``manage.py worker``: claim queued work, run the engine, persist its events.

One job at a time. While the engine runs, a heartbeat thread records that the worker is alive
(every ``TRAINING_HEARTBEAT_S``), saves the log tail, and sends SIGTERM through the executor when a
cancel was requested. On start, runs whose heartbeat went stale (their worker died) are marked
interrupted; they resume from their last checkpoint when someone asks. With no job queued, it
renders imported responses to HTML, a few batches at a time (``labeling.services.prerender``).

Imports and dataset builds (``labeling.models.DataJob``) run in a second loop, on a thread of
their own, so they never wait behind a training run that takes minutes, and a run never waits
behind them (``labeling.services.data_jobs``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from labeling.services.data_jobs import data_job_run_next, data_jobs_fail_stale
from labeling.services.prerender import responses_render_pending
from rlhf_platform.errors import UserError
from training.executors import EngineHandle, Executor, get_executor
from training.models import GenerationJob, Job, TrainingRun
from training.services import generation as generation_services
from training.services import runs as run_services
from training.services.jobs import job_claim_next, job_heartbeat, job_record_progress, jobs_mark_interrupted

logger = logging.getLogger(__name__)

# Batches of responses (labeling.services.prerender) rendered between two looks at the queue.
RENDER_BATCHES_WHEN_IDLE = 4
# The loops ``run_forever`` can run: training runs and generation jobs, and imports and builds.
QUEUES = ("training", "data")
# Longest wait between two looks at the data queue: a manager watches the import page meanwhile.
DATA_POLL_MAX_S = 1.0


@dataclass
class EngineOutcome:
    """How one engine process ended: its last event (finished, failed, cancelled) if any, and exit status."""

    final: dict[str, Any] | None
    exit_code: int
    log_tail: str
    cancel_requested: bool

    @property
    def kind(self) -> str | None:
        return self.final["event"] if self.final else None

    def error(self) -> str:
        if self.final is not None and self.final.get("error"):
            return str(self.final["error"])
        last_line = self.log_tail.strip().splitlines()[-1:] or ["no output"]
        return f"The engine exited with status {self.exit_code} without a result ({last_line[0]})."


class Worker:
    def __init__(
        self,
        *,
        executor: Executor | None = None,
        heartbeat_s: float | None = None,
        stale_after_s: float | None = None,
        log: Callable[[str], None] = logger.info,
    ) -> None:
        self.executor = executor or get_executor()
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else settings.TRAINING_HEARTBEAT_S
        self.stale_after_s = stale_after_s if stale_after_s is not None else settings.TRAINING_STALE_AFTER_S
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.log = log

    def recover(self) -> int:
        """Mark runs whose worker died as interrupted, and fail such data jobs; returns how many."""
        count = jobs_mark_interrupted(stale_after_s=self.stale_after_s)
        if count:
            self.log(f"marked {count} stale run(s) or job(s) interrupted")
        return count + self.fail_stale_data_jobs()

    def fail_stale_data_jobs(self) -> int:
        count = data_jobs_fail_stale(stale_after_s=self.stale_after_s)
        if count:
            self.log(f"failed {count} stale import(s) or build(s)")
        return count

    def run_data_once(self) -> bool:
        """Run one queued import or dataset build to its end; False when there was none."""
        close_old_connections()
        job = data_job_run_next(worker=self.name, heartbeat_s=self.heartbeat_s)
        if job is None:
            return False
        self.log(f"{job}: {job.status}")
        return True

    def run_once(self) -> bool:
        """Run one queued training run or generation job to its end; False when there was none."""
        close_old_connections()
        run = job_claim_next(model=TrainingRun, worker=self.name)
        if run is not None:
            self._guarded(run, self.execute_run, lambda error: run_services.run_fail(run=run, error=error))
            return True
        job = job_claim_next(model=GenerationJob, worker=self.name)
        if job is not None:
            self._guarded(
                job,
                self.execute_generation,
                lambda error: generation_services.generation_job_fail(job=job, error=error),
            )
            return True
        return False

    def _guarded(self, job: Job, execute: Callable[[Any], None], fail: Callable[[str], Any]) -> None:
        """Run ``execute(job)``; a bug or an unexpected error fails that job (``fail(error)``) instead of
        stopping the worker."""
        try:
            execute(job)
        except UserError as error:  # e.g. an input gone missing before the engine started
            fail(error.message)
            self.log(f"{job}: failed: {error.message}")
        except Exception as error:
            logger.exception("worker error on %s", job)
            fail(f"Worker error: {type(error).__name__}: {error}")

    def run_forever(
        self, *, poll_s: float, stop: threading.Event | None = None, queues: tuple[str, ...] = QUEUES
    ) -> None:
        """Run the loops of ``queues`` until ``stop`` is set: training in this thread, data in another."""
        stop = stop or threading.Event()
        self.recover()
        data_loop = None
        if "data" in queues:
            data_loop = threading.Thread(
                target=self.run_data_forever, kwargs={"poll_s": poll_s, "stop": stop}, name="data-jobs", daemon=True
            )
            data_loop.start()
        try:
            if "training" in queues:
                while not stop.is_set():
                    try:
                        if self.run_once() or self.render_responses():
                            continue
                    except DatabaseError:
                        # E.g. SQLite's write lock held past its timeout by an import in the data
                        # loop: the queue is still there when the lock is free.
                        logger.exception("the training queue failed; trying again")
                    stop.wait(poll_s)
            elif data_loop is not None:
                while data_loop.is_alive():  # a timed join: Ctrl+C still reaches the main thread
                    data_loop.join(timeout=1.0)
        finally:
            stop.set()
            if data_loop is not None:
                data_loop.join()

    def run_data_forever(self, *, poll_s: float, stop: threading.Event) -> None:
        """The data loop: imports and dataset builds, one at a time, beside the training loop."""
        try:
            while not stop.is_set():
                try:
                    if self.run_data_once():
                        continue
                    self.fail_stale_data_jobs()  # another worker's job, dead since this one started
                except Exception:  # a bug in one job must not stop imports and builds for good
                    logger.exception("the data job queue failed; trying again")
                stop.wait(min(poll_s, DATA_POLL_MAX_S))
        finally:
            connection.close()  # this thread's own database connection

    def render_responses(self) -> int:
        """With no job queued: render a few batches of imported responses (how many were rendered).

        Bounded, so a job queued meanwhile waits for a second or so, not for a whole import.
        """
        try:
            count = responses_render_pending(max_batches=RENDER_BATCHES_WHEN_IDLE)
        except DatabaseError:
            logger.exception("rendering responses failed")
            return 0
        if count:
            self.log(f"rendered {count} response(s)")
        return count

    # --- one job ---------------------------------------------------------------------------------

    def execute_run(self, run: TrainingRun) -> None:
        self.log(f"run {run.pk}: {run.stage} started")
        spec_path = run_services.run_prepare(run=run)
        outcome = self.run_engine(run, spec_path, on_event=lambda event: self._run_event(run, event))
        if outcome.kind == "finished":
            metrics = outcome.final.get("metrics") or {}
            run_services.run_succeed(run=run, final_metrics=metrics, log_tail=outcome.log_tail)
        elif outcome.kind == "cancelled":
            run_services.run_mark_cancelled(
                run=run, checkpoint=outcome.final.get("checkpoint"), log_tail=outcome.log_tail
            )
        else:
            run_services.run_fail(run=run, error=outcome.error(), log_tail=outcome.log_tail)
        self.log(f"run {run.pk}: {run.status}")

    def execute_generation(self, job: GenerationJob) -> None:
        self.log(f"generation job {job.pk} started")
        spec_paths = generation_services.generation_prepare(job=job)
        results, log_tail = [], ""
        for spec_path in spec_paths:
            outcome = self.run_engine(job, spec_path, on_event=lambda event: self._generation_event(job, event))
            log_tail = outcome.log_tail
            if outcome.kind == "cancelled" or (outcome.cancel_requested and outcome.kind != "finished"):
                generation_services.generation_job_mark_cancelled(job=job, log_tail=log_tail)
                return
            if outcome.kind != "finished":
                generation_services.generation_job_fail(job=job, error=outcome.error(), log_tail=log_tail)
                return
            results.append(outcome.final.get("metrics") or {})
        try:
            generation_services.generation_job_succeed(job=job, engine_results=results, log_tail=log_tail)
        except UserError as error:
            generation_services.generation_job_fail(job=job, error=error.message, log_tail=log_tail)
        self.log(f"generation job {job.pk}: {job.status}")

    def run_engine(self, job: Job, spec_path: Path, *, on_event: Callable[[dict], None]) -> EngineOutcome:
        """Start the engine, feed its events to ``on_event`` while heartbeating, and return how it ended."""
        handle = self.executor.start(spec_path, spec_path.parent)
        heartbeat = _Heartbeat(job, handle, self.heartbeat_s)
        heartbeat.start()
        final = None
        try:
            for event in handle.events():
                if event["event"] in ("finished", "failed", "cancelled"):
                    final = event
                else:
                    on_event(event)
            exit_code = handle.wait()
        finally:
            heartbeat.stop()
        return EngineOutcome(final, exit_code, handle.log_tail(), heartbeat.cancel_sent)

    def _run_event(self, run: TrainingRun, event: dict) -> None:
        if event["event"] == "progress":
            _record_progress(run, event)
        else:
            run_services.run_record_event(run=run, event=event)

    def _generation_event(self, job: GenerationJob, event: dict) -> None:
        if event["event"] == "progress":
            _record_progress(job, event)


def _record_progress(job: Job, event: dict) -> None:
    """Store a progress event, best effort: the next one carries the same figures, while a database
    error here (SQLite's write lock held by an import) would fail a run that is training fine."""
    try:
        job_record_progress(job=job, event=event)
    except DatabaseError:
        logger.warning("progress of %s not saved; the next event will be", job, exc_info=True)


class _Heartbeat(threading.Thread):
    """Beats every ``interval`` seconds; sends the engine SIGTERM once a cancel is requested."""

    def __init__(self, job: Job, handle: EngineHandle, interval: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{job.pk}")
        self.job, self.handle, self.interval = job, handle, interval
        self.cancel_sent = False
        self._stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopped.wait(self.interval):
                try:
                    cancel = job_heartbeat(job=self.job, log_tail=self.handle.log_tail())
                except DatabaseError:
                    logger.warning("heartbeat of %s failed; trying again", self.job, exc_info=True)
                    continue
                if cancel and not self.cancel_sent:
                    self.cancel_sent = True
                    self.handle.terminate()
        finally:
            connection.close()  # this thread's own database connection

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=self.interval + 30)
