"""The worker loop behind ``manage.py worker``: claim queued work, run the engine, persist its events.

One job at a time. While the engine runs, a heartbeat thread records that the worker is alive
(every ``TRAINING_HEARTBEAT_S``), saves the log tail, and sends SIGTERM through the executor when a
cancel was requested. With no job queued, it renders imported responses to HTML, a few batches at a
time (``labeling.services.prerender``).

Stop and restart. A worker has a name that outlives its process (``WORKER_NAME``, ``--name``; the
host name by default), and no two live workers share one (``training.services.workers``):

- On SIGTERM or SIGINT (``stop_on_signals``) it stops claiming, passes SIGTERM to its engine, which
  checkpoints at the end of its step, marks the run interrupted, and exits. After
  ``TRAINING_STOP_GRACE_S`` it kills an engine still running (the run is interrupted all the same,
  from the newest complete checkpoint on disk). A running import or build is given the same grace
  to end; past it, the worker exits and the job's transaction is rolled back (nothing is half
  written), and the job is failed when the worker starts again.
- On start it takes its name, interrupts the runs its previous process left running (that process
  is dead, or the name would have been refused) and fails its data jobs, without waiting for their
  heartbeats to go stale; then the auto-resume policy (``TRAINING_AUTO_RESUME``) queues its
  interrupted runs again.
- Every ``TRAINING_SWEEP_S`` a live worker interrupts runs whose heartbeat went stale under other
  workers (dead on another machine), and the same policy queues them again.

Imports and dataset builds (``labeling.models.DataJob``) run in a second loop, on a thread of
their own, so they never wait behind a training run that takes minutes, and a run never waits
behind them (``labeling.services.data_jobs``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from labeling.services.data_jobs import data_job_run_next, data_jobs_fail_of, data_jobs_fail_stale
from labeling.services.prerender import responses_render_pending
from rlhf_platform.errors import UserError
from training.executors import EngineHandle, Executor, get_executor
from training.models import GenerationJob, Job, TrainingRun
from training.services import generation as generation_services
from training.services import runs as run_services
from training.services.jobs import (
    job_claim_next,
    job_heartbeat,
    job_mark_interrupted,
    job_record_progress,
    jobs_interrupted_of,
    jobs_mark_interrupted,
    jobs_recover,
    jobs_resume_automatically,
)
from training.services.workers import worker_beat, worker_register, worker_unregister

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


def default_worker_name(queues: tuple[str, ...] = QUEUES) -> str:
    """``WORKER_NAME``, else the host name (stable across restarts), with the queue when it runs only one:
    a training worker and a data worker on one host are two workers."""
    name = settings.WORKER_NAME or socket.gethostname()
    return name if settings.WORKER_NAME or set(queues) == set(QUEUES) else f"{name}-{'-'.join(queues)}"


class Worker:
    def __init__(
        self,
        *,
        executor: Executor | None = None,
        heartbeat_s: float | None = None,
        stale_after_s: float | None = None,
        sweep_s: float | None = None,
        stop_grace_s: float | None = None,
        name: str | None = None,
        log: Callable[[str], None] = logger.info,
    ) -> None:
        self.executor = executor or get_executor()
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else settings.TRAINING_HEARTBEAT_S
        self.stale_after_s = stale_after_s if stale_after_s is not None else settings.TRAINING_STALE_AFTER_S
        self.sweep_s = sweep_s if sweep_s is not None else settings.TRAINING_SWEEP_S
        self.stop_grace_s = stop_grace_s if stop_grace_s is not None else settings.TRAINING_STOP_GRACE_S
        self.name = name or default_worker_name()
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.log = log
        # Set by ``stop`` (a signal): no more claims, engines asked to stop, runs interrupted.
        self.stopping = threading.Event()
        self.stop_reason = ""
        self.stop_deadline = 0.0  # time.monotonic() by which everything must have stopped
        self.registered = False
        self._engines: set[EngineHandle] = set()
        self._engines_lock = threading.Lock()

    # --- identity, recovery, sweep -----------------------------------------------------------------

    def recover(self) -> int:
        """Take the worker's name (``WorkerNameInUse`` while a live worker holds it), then recover what its
        previous process left and what dead workers left; returns how many runs and jobs it recovered.

        Its own running runs are interrupted at once (that process is dead); other workers' only once
        their heartbeat is stale. Interrupted runs it held, and the stale ones, are then queued again
        under the auto-resume policy. Its own and stale imports and builds are failed (nothing of them
        was written; they can be run again).
        """
        worker_register(name=self.name, host=self.host, pid=self.pid, stale_after_s=self.stale_after_s)
        self.registered = True
        own = jobs_recover(worker=self.name)
        stale = jobs_mark_interrupted(stale_after_s=self.stale_after_s)
        if own or stale:
            self.log(f"marked {len(own) + len(stale)} run(s) or job(s) interrupted")
        resumed = jobs_resume_automatically(jobs=[*jobs_interrupted_of(worker=self.name), *stale])
        if resumed:
            self.log(f"queued {len(resumed)} interrupted run(s) or job(s) again (TRAINING_AUTO_RESUME)")
        failed = data_jobs_fail_of(worker=self.name)
        if failed:
            self.log(f"failed {failed} import(s) or build(s) this worker was running when it stopped")
        return len(own) + len(stale) + failed + self.fail_stale_data_jobs()

    def sweep(self) -> int:
        """Interrupt runs and jobs whose worker went silent, and queue them again under the auto-resume
        policy; returns how many were interrupted."""
        stale = jobs_mark_interrupted(stale_after_s=self.stale_after_s)
        if stale:
            names = ", ".join(sorted({job.worker for job in stale}))
            self.log(f"marked {len(stale)} run(s) or job(s) of silent worker(s) {names} interrupted")
            resumed = jobs_resume_automatically(jobs=stale)
            if resumed:
                self.log(f"queued {len(resumed)} of them again (TRAINING_AUTO_RESUME)")
        return len(stale)

    def release(self) -> None:
        """Give the name up as the worker exits, so its next start finds it free."""
        if self.registered:
            worker_unregister(name=self.name, host=self.host, pid=self.pid)
            self.registered = False

    # --- stopping ----------------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Stop cleanly (on a signal): claim nothing more, ask running engines to stop (they checkpoint),
        and kill those still running ``stop_grace_s`` later. Asked a second time, kill them now."""
        if self.stopping.is_set():
            self.log(f"worker {self.name}: {reason} again; stopping its engine now")
            self._kill_engines()
            return
        self.stop_reason, self.stop_deadline = reason, time.monotonic() + self.stop_grace_s
        self.stopping.set()
        self.log(f"worker {self.name}: {reason}; stopping (up to {self.stop_grace_s:g} s for checkpoints)")
        with self._engines_lock:
            engines = list(self._engines)
        for handle in engines:
            handle.terminate()
        grace = threading.Timer(self.stop_grace_s, self._kill_engines)
        grace.daemon = True
        grace.start()

    def _kill_engines(self) -> None:
        with self._engines_lock:
            engines = list(self._engines)
        for handle in engines:
            self.log(f"worker {self.name}: an engine did not stop within {self.stop_grace_s:g} s; killing it")
            handle.kill()

    def _interrupt(self, job: Job, outcome: EngineOutcome) -> None:
        """The engine ended because this worker is stopping: the run or job is interrupted, not cancelled."""
        reason = f"The worker {self.name} stopped ({self.stop_reason})"
        if outcome.kind != "cancelled":
            reason += f"; its engine did not stop within {self.stop_grace_s:g} s and was killed"
        interrupted = job_mark_interrupted(job=job, worker=self.name, reason=reason, log_tail=outcome.log_tail)
        if interrupted is None:
            return
        where = ""
        if isinstance(interrupted, TrainingRun):
            last = interrupted.checkpoints[-1]["path"] if interrupted.checkpoints else "none"
            where = f" at step {interrupted.step}, checkpoint {last}"
        self.log(f"worker {self.name} stopped ({self.stop_reason}): {interrupted} interrupted{where}")

    def _stopped_by_worker(self, outcome: EngineOutcome) -> bool:
        """The engine stopped because this worker is stopping, not because someone cancelled its job."""
        return self.stopping.is_set() and not outcome.cancel_requested and outcome.kind in ("cancelled", None)

    def fail_stale_data_jobs(self) -> int:
        count = data_jobs_fail_stale(stale_after_s=self.stale_after_s)
        if count:
            self.log(f"failed {count} stale import(s) or build(s)")
        return count

    def run_data_once(self) -> bool:
        """Run one queued import or dataset build to its end; False when there was none."""
        close_old_connections()
        if self.stopping.is_set():
            return False
        job = data_job_run_next(worker=self.name, heartbeat_s=self.heartbeat_s)
        if job is None:
            return False
        self.log(f"{job}: {job.status}")
        return True

    def run_once(self) -> bool:
        """Run one queued training run or generation job to its end; False when there was none."""
        close_old_connections()
        if self.stopping.is_set():
            return False
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
        """Run the loops of ``queues`` until ``stop`` is set: training in this thread, data in another.

        ``stop`` (``self.stopping`` by default) ends the loops once their current job ends; ``stop()``
        also makes that job end soon (see there).
        """
        if stop is not None:
            self.stopping = stop
        stop = self.stopping
        self.recover()
        housekeeping = _Housekeeping(self) if self.registered else None
        if housekeeping is not None:
            housekeeping.start()
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
                data_loop.join(timeout=self._time_left_to_stop())
                if data_loop.is_alive():
                    # Its transaction is rolled back as the process exits: nothing is half written.
                    self.log(
                        f"worker {self.name}: an import or build still running after {self.stop_grace_s:g} s "
                        "is abandoned; it is marked failed when this worker starts again"
                    )
            if housekeeping is not None:
                housekeeping.stop()
            self.release()

    def _time_left_to_stop(self) -> float | None:
        """Seconds left of the stop's grace; None (no limit) when the loops ended without a signal."""
        if not self.stop_reason:
            return None
        return max(self.stop_deadline - time.monotonic(), 0.0)

    def run_one(self, *, queues: tuple[str, ...] = QUEUES) -> bool:
        """``manage.py worker --once``: recover, run at most one queued job, give the name back."""
        try:
            self.recover()
            return ("training" in queues and self.run_once()) or ("data" in queues and self.run_data_once())
        finally:
            self.release()

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
        if self._stopped_by_worker(outcome):
            self._interrupt(run, outcome)
            return
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
            if self._stopped_by_worker(outcome):
                self._interrupt(job, outcome)  # generation starts over when it runs again
                return
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
        with self._engines_lock:
            self._engines.add(handle)
        if self.stopping.is_set() and self.stop_reason:  # the signal came as it started
            handle.terminate()
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
            with self._engines_lock:
                self._engines.discard(handle)
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


class _Housekeeping(threading.Thread):
    """The worker's own heartbeat (``WorkerPresence``) and its sweep for runs of silent workers."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(daemon=True, name="worker-housekeeping")
        self.worker = worker
        self._stopped = threading.Event()

    def run(self) -> None:
        worker = self.worker
        next_sweep = time.monotonic() + worker.sweep_s
        try:
            while not self._stopped.wait(min(worker.heartbeat_s, worker.sweep_s)):
                try:
                    if not worker_beat(name=worker.name, host=worker.host, pid=worker.pid):
                        # It was silent past TRAINING_STALE_AFTER_S and a new process took the name
                        # (and its runs): two workers must not act under one name.
                        logger.error("worker %s: another process took this name over; stopping", worker.name)
                        worker.registered = False
                        worker.stop("its name was taken over")
                        return
                    if time.monotonic() >= next_sweep:
                        next_sweep = time.monotonic() + worker.sweep_s
                        worker.sweep()
                except DatabaseError:
                    logger.warning("worker %s: heartbeat or sweep failed; trying again", worker.name, exc_info=True)
        finally:
            connection.close()  # this thread's own database connection

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=30)


def stop_on_signals(worker: Worker) -> None:
    """SIGTERM and SIGINT stop ``worker`` cleanly (``Worker.stop``); a second one kills its engines now.

    The handlers do nothing but wake a thread through a pipe (``signal.set_wakeup_fd``), which
    calls ``stop``: a Python handler runs between two bytecodes of the main thread, which may hold
    a lock that ``stop`` needs. Call it from the main thread.
    """
    # A signal ignored at start stays ignored, as Python itself leaves SIGINT: a shell starts a
    # background job (`make demo`'s worker) with SIGINT ignored, and its Ctrl+C is for the foreground.
    wanted = {signum for signum in (signal.SIGTERM, signal.SIGINT) if signal.getsignal(signum) != signal.SIG_IGN}
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for signum in wanted:
        signal.signal(signum, _wake_only)

    def listen() -> None:
        while True:
            for number in os.read(read_fd, 16):
                if number in wanted:
                    worker.stop(signal.Signals(number).name)

    threading.Thread(target=listen, daemon=True, name="stop-signals").start()


def _wake_only(signum: int, frame: Any) -> None:
    """The Python-level handler: the wakeup pipe already carries the signal to ``stop_on_signals``."""
