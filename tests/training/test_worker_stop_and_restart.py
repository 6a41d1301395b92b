"""SIGTERM stops a worker process cleanly mid-run, and the same worker started again resumes the run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from labeling.datasets import BuildParams
from labeling.services.datasets import dataset_build
from tests.conftest import REPO_ROOT
from tests.training.conftest import checkpoints_on_disk
from tests.training.test_cancel_and_resume import launch_sft, step_of, wait_until, worker_environment
from training.models import JobStatus, Round, RunMetric

pytestmark = pytest.mark.django_db(transaction=True)  # the worker processes write beside the test


def start_worker(environment: dict[str, str], log_path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--poll", "0.2"],
        cwd=REPO_ROOT,
        env=environment,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )


def stop_worker(process: subprocess.Popen) -> tuple[int, float]:
    """SIGTERM, then its exit status and how long it took to exit."""
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=60)
    return code, time.monotonic() - sent


def test_sigterm_interrupts_the_run_with_a_checkpoint_and_a_restart_resumes_it(
    settings, tmp_path, manager, tiny_model, judged_campaign
):
    var_dir = tmp_path / "var"
    settings.DATASETS_DIR, settings.TRAINING_DIR = var_dir / "datasets", var_dir / "training"
    snapshot, _ = dataset_build(
        campaigns=[judged_campaign], params=BuildParams(kind="sft", method="majority"), created_by=manager
    )
    # No periodic checkpoint: the only one is written because the worker is stopping. Long enough
    # never to finish here (a step of the tiny model takes milliseconds).
    run = launch_sft(tiny_model, snapshot, manager, max_steps=100_000, save_steps=100_000)
    environment = worker_environment(var_dir, WORKER_NAME="gpu-1", TRAINING_AUTO_RESUME="1")
    process = start_worker(environment, tmp_path / "first.log")
    try:
        wait_until(lambda: step_of(run) >= 3, timeout_s=120, what="the worker process to train a few steps")
        code, seconds = stop_worker(process)
    finally:
        if process.poll() is None:
            process.kill()
    log = (tmp_path / "first.log").read_text()
    assert code == 0, log
    assert seconds < 20, log
    run.refresh_from_db()
    assert run.status == JobStatus.INTERRUPTED, run.error
    assert "gpu-1 stopped (SIGTERM)" in run.error and run.worker == "gpu-1"
    (checkpoint,) = run.checkpoints
    assert [checkpoint["path"]] == checkpoints_on_disk(run) and checkpoint["step"] == run.step
    assert f"worker gpu-1 stopped (SIGTERM): sft run {run.pk} interrupted at step {run.step}" in log
    assert log.rstrip().endswith("worker gpu-1 stopped (SIGTERM)")
    assert run.round.status == Round.Status.RUNNING  # it goes on once the run resumes
    stopped_at = run.step

    # A service manager starts it again at once: it resumes its own run, from that checkpoint.
    process = start_worker(environment, tmp_path / "second.log")
    try:
        wait_until(lambda: step_of(run) > stopped_at + 2, timeout_s=120, what="the run to resume")
        code, _ = stop_worker(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, (tmp_path / "second.log").read_text()
    run.refresh_from_db()
    assert run.auto_resumes == 1 and run.spec["resume_from"] == "latest"
    assert RunMetric.objects.filter(run=run, step=1, values__has_key="loss").count() == 1  # not started over
    # Stopped again: resumed automatically once already, so it waits for a person this time.
    assert run.status == JobStatus.INTERRUPTED and "resumed automatically once" in run.error
