"""A stopping worker waits a bounded time for its engine: one that ignores SIGTERM is killed, and its run
is interrupted all the same."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from tests.training.test_worker import ScriptedHandle, launch_sft_dpo
from training.models import JobStatus
from training.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)  # the worker runs in a thread of its own


class StubbornHandle(ScriptedHandle):
    """An engine that trains on through SIGTERM (a step that takes minutes) until it is killed."""

    def __init__(self) -> None:
        super().__init__([{"event": "started", "stage": "sft"}], -9)
        self.running, self.killed = threading.Event(), threading.Event()

    def events(self):
        yield from self._events
        self.running.set()
        self.killed.wait(timeout=60)

    def kill(self) -> None:
        self.killed.set()


class StubbornExecutor:
    def __init__(self) -> None:
        self.handle = StubbornHandle()

    def start(self, spec_path, workdir) -> StubbornHandle:
        return self.handle


def test_an_engine_that_outlives_the_grace_is_killed_and_its_run_interrupted(tiny_model, preference_snapshot, manager):
    executor = StubbornExecutor()
    round_ = launch_sft_dpo(tiny_model, preference_snapshot, manager)
    worker = Worker(executor=executor, heartbeat_s=0.2, stop_grace_s=0.5, name="gpu-1", log=lambda message: None)

    def work() -> None:
        try:
            worker.run_once()
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    try:
        assert executor.handle.running.wait(timeout=30)
        worker.stop("SIGTERM")
        assert executor.handle.terminated  # asked first
        thread.join(timeout=30)
    finally:
        executor.handle.killed.set()
        thread.join(timeout=30)
    sft = round_.runs.get(position=0)
    assert executor.handle.killed.is_set()
    assert sft.status == JobStatus.INTERRUPTED
    assert sft.error.startswith(
        "The worker gpu-1 stopped (SIGTERM); its engine did not stop within 0.5 s and was killed"
    )
