"""The worker's data loop: imports and dataset builds run while a training run holds the training loop."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labeling.models import CampaignStatus, DataJob, Task
from labeling.services.data_jobs import import_job_create
from tests.labeling.factories import jsonl, make_campaign, pairwise_rows
from tests.training.test_worker import ScriptedHandle, launch_sft_dpo
from training.models import JobStatus, TrainingRun
from training.worker import Worker


class HeldHandle(ScriptedHandle):
    """An engine that says it started, then runs until ``release`` is set, then finishes."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__([{"event": "started", "stage": "sft"}], 0)
        self.release = release
        self.running = threading.Event()

    def events(self):
        yield from self._events
        self.running.set()
        self.release.wait(timeout=60)
        yield {"event": "finished", "metrics": {}}


class HeldExecutor:
    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.handles: list[HeldHandle] = []

    def start(self, spec_path, workdir) -> HeldHandle:
        self.handles.append(HeldHandle(self.release))
        return self.handles[-1]


def wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_an_import_runs_while_a_training_run_holds_the_training_loop(tiny_model, preference_snapshot, manager):
    release, stop = threading.Event(), threading.Event()
    executor = HeldExecutor(release)
    round_ = launch_sft_dpo(tiny_model, preference_snapshot, manager)
    campaign = make_campaign(manager=manager, status=CampaignStatus.DRAFT, name="Imported while training")
    worker = Worker(executor=executor, heartbeat_s=0.2, log=lambda message: None)
    loops = threading.Thread(target=worker.run_forever, kwargs={"poll_s": 0.1, "stop": stop}, daemon=True)
    loops.start()
    try:
        wait_for(lambda: executor.handles and executor.handles[0].running.is_set())
        job = import_job_create(
            campaign=campaign,
            upload=SimpleUploadedFile("tasks.jsonl", jsonl(pairwise_rows(4))),
            file_format="jsonl",
            created_by=manager,
        )

        wait_for(lambda: DataJob.objects.get(pk=job.pk).finished)

        job.refresh_from_db()
        assert job.status == DataJob.Status.SUCCEEDED, job.error
        assert Task.objects.filter(campaign=campaign).count() == 4
        sft = round_.runs.order_by("position").first()
        assert TrainingRun.objects.get(pk=sft.pk).status == JobStatus.RUNNING  # still held by its engine
    finally:
        release.set()
        stop.set()
        loops.join(timeout=60)
    assert not loops.is_alive()


@pytest.mark.django_db(transaction=True)
def test_a_data_only_worker_runs_data_jobs_and_leaves_training_runs_queued(tiny_model, preference_snapshot, manager):
    stop = threading.Event()
    round_ = launch_sft_dpo(tiny_model, preference_snapshot, manager)
    campaign = make_campaign(manager=manager, status=CampaignStatus.DRAFT, name="Data only")
    job = import_job_create(
        campaign=campaign,
        upload=SimpleUploadedFile("tasks.jsonl", jsonl(pairwise_rows(2))),
        file_format="jsonl",
        created_by=manager,
    )
    worker = Worker(executor=object(), heartbeat_s=0.2, log=lambda message: None)
    loops = threading.Thread(
        target=worker.run_forever, kwargs={"poll_s": 0.1, "stop": stop, "queues": ("data",)}, daemon=True
    )
    loops.start()
    try:
        wait_for(lambda: DataJob.objects.get(pk=job.pk).finished)
    finally:
        stop.set()
        loops.join(timeout=30)
    assert DataJob.objects.get(pk=job.pk).status == DataJob.Status.SUCCEEDED
    assert {run.status for run in round_.runs.all()} <= {JobStatus.QUEUED, JobStatus.WAITING}


@pytest.mark.django_db(transaction=True)
def test_a_locked_database_pauses_the_loops_instead_of_ending_them(monkeypatch):
    """SQLite's write lock held past its timeout by an import (OperationalError) or a bug in a data
    job: both loops log it and go on polling."""
    from django.db import OperationalError

    stop = threading.Event()
    worker = Worker(executor=HeldExecutor(threading.Event()), heartbeat_s=0.2, log=lambda message: None)
    calls = {"training": 0, "data": 0}

    def locked_once():
        calls["training"] += 1
        if calls["training"] == 1:
            raise OperationalError("database is locked")
        return False

    def broken_once():
        calls["data"] += 1
        if calls["data"] == 1:
            raise OSError("a bug in one data job")
        return False

    monkeypatch.setattr(worker, "run_once", locked_once)
    monkeypatch.setattr(worker, "run_data_once", broken_once)
    loops = threading.Thread(target=worker.run_forever, kwargs={"poll_s": 0.05, "stop": stop}, daemon=True)
    loops.start()
    try:
        wait_for(lambda: calls["training"] >= 3 and calls["data"] >= 3)
        assert loops.is_alive()
    finally:
        stop.set()
        loops.join(timeout=10)


@pytest.mark.django_db
def test_a_progress_event_the_database_refuses_does_not_fail_the_run(
    monkeypatch, tiny_model, preference_snapshot, manager
):
    from django.db import OperationalError

    from training import worker as worker_module

    def locked(**kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(worker_module, "job_record_progress", locked)
    round_ = launch_sft_dpo(tiny_model, preference_snapshot, manager)
    run = round_.runs.get(position=0)
    worker = Worker(executor=HeldExecutor(threading.Event()), heartbeat_s=0.2, log=lambda message: None)

    worker._run_event(run, {"event": "progress", "step": 1, "total_steps": 4})  # logged, not raised

    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and run.error == ""
