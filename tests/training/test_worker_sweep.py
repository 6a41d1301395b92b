"""A live worker interrupts runs whose own worker went silent, and the auto-resume policy queues them again."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from tests.training.conftest import first_run
from tests.training.test_worker import ScriptedExecutor
from training.models import JobStatus, TrainingRun
from training.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)  # the worker's threads write beside the test


def hold(run: TrainingRun, *, worker: str, beat_s_ago: float) -> None:
    """``run`` is running under ``worker``, which last beat ``beat_s_ago`` seconds ago."""
    run.status, run.worker = JobStatus.RUNNING, worker
    run.heartbeat_at = run.started_at = timezone.now() - dt.timedelta(seconds=beat_s_ago)
    run.save(update_fields=["status", "worker", "heartbeat_at", "started_at"])


def make_worker(**fields) -> Worker:
    return Worker(executor=ScriptedExecutor(), heartbeat_s=0.2, log=lambda message: None, **fields)


def test_a_live_worker_interrupts_a_run_whose_worker_went_silent_within_its_sweep_period(settings, training_round):
    settings.TRAINING_AUTO_RESUME = 0
    run = first_run(training_round)
    hold(run, worker="gpu-2", beat_s_ago=0)  # alive when this worker starts: its start-up sweep leaves it
    worker = make_worker(name="gpu-1", stale_after_s=1.0, sweep_s=0.3)
    stop = threading.Event()

    def work() -> None:
        try:
            worker.run_forever(poll_s=0.1, stop=stop, queues=("training",))
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    try:
        time.sleep(0.3)
        run.refresh_from_db()
        assert run.status == JobStatus.RUNNING
        deadline = time.monotonic() + 1.0 + 0.3 + 3.0  # stale after 1 s, seen by the next sweep (plus slack)
        while run.status == JobStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.1)
            run.refresh_from_db()
    finally:
        stop.set()
        thread.join(timeout=30)
    assert run.status == JobStatus.INTERRUPTED
    assert "gpu-2" in run.error and "resume" in run.error
    assert run.worker == "gpu-2"  # who held it, kept for the record


def test_an_interrupted_run_resumes_automatically_at_most_the_policy_s_number_of_times(
    settings, training_round, manager_api, manager_client
):
    settings.TRAINING_AUTO_RESUME = 1
    run = first_run(training_round)
    hold(run, worker="gpu-2", beat_s_ago=600)
    worker = make_worker(name="gpu-1", stale_after_s=120)

    assert worker.sweep() == 1
    run.refresh_from_db()
    assert (run.status, run.resume_from, run.auto_resumes) == (JobStatus.QUEUED, "latest", 1)
    shown = manager_api.get(f"/api/training/runs/{run.pk}/").json()
    assert shown["auto_resumes"] == 1 and shown["status"] == "queued"
    page = manager_client.get(f"/training/runs/{run.pk}/").content.decode()
    assert "resumed automatically 1 time<" in page

    hold(run, worker="gpu-3", beat_s_ago=600)  # its second worker died too: a person decides now
    assert worker.sweep() == 1
    run.refresh_from_db()
    assert (run.status, run.auto_resumes) == (JobStatus.INTERRUPTED, 1)
    assert "resumed automatically once" in run.error
    assert manager_api.post(f"/api/training/runs/{run.pk}/resume/").status_code == 200
