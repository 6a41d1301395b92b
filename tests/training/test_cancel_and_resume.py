"""Cancel a run mid-training; kill the worker mid-run, find the run interrupted, and resume it to the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from tests.conftest import REPO_ROOT, clean_environment
from tests.servers import write_instance_marker
from tests.training.conftest import FAST_SETTINGS, checkpoints_on_disk
from training.models import JobStatus, Round, RunMetric, TrainingRun
from training.services.rounds import round_launch

pytestmark = pytest.mark.django_db(transaction=True)  # a worker thread or process writes beside the test


def wait_until(condition, *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def launch_sft(tiny_model, dataset, manager, **settings) -> TrainingRun:
    round_ = round_launch(
        name="long sft",
        preset=Round.Preset.SINGLE,
        stage="sft",
        base_model=tiny_model,
        dataset=dataset,
        launched_by=manager,
        settings={**FAST_SETTINGS, **settings},
        evaluate=False,
    )
    return round_.runs.get()


def step_of(run: TrainingRun) -> int:
    run.refresh_from_db()
    return run.step


def test_it_cancels_a_running_run_which_keeps_its_checkpoint(api_client, manager, tiny_model, sft_snapshot, worker):
    # A checkpoint every step, two kept: the list must follow the disk, and hold the cancel's own.
    run = launch_sft(tiny_model, sft_snapshot, manager, max_steps=5000, save_steps=1)

    def work() -> None:
        try:
            worker.run_once()
        finally:
            connection.close()  # this thread's own connection; left open it would block dropping the test database

    thread = threading.Thread(target=work)
    thread.start()
    try:
        wait_until(lambda: step_of(run) >= 3, timeout_s=90, what="a few training steps")
        api_client.force_authenticate(manager)
        response = api_client.post(f"/api/training/runs/{run.pk}/cancel/")
        assert response.status_code == 200 and response.json()["cancel_requested"] is True
    finally:
        thread.join(timeout=120)
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED, run.error
    assert run.step < 5000
    assert [point["path"] for point in run.checkpoints] == checkpoints_on_disk(run)
    assert len(run.checkpoints) == 2 and run.checkpoints[-1]["step"] == run.step
    assert f"Last checkpoint: {run.checkpoints[-1]['path']}" in run.error
    assert run.round.status == Round.Status.CANCELLED and "cancelled" in run.round.failure_reason


def database_url_for_other_processes() -> str:
    """A DATABASE_URL for another process to reach this test database (SQLite file or PostgreSQL)."""
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{database['NAME']}"
    user, password = quote(database["USER"], safe=""), quote(database["PASSWORD"], safe="")
    return f"postgres://{user}:{password}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


def engine_processes(spec_path: Path) -> list[int]:
    """Process ids whose command line names ``spec_path`` (the engine of that run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(spec_path).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def worker_environment(var_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a ``manage.py worker`` process that shares this test's database and files
    (whose instance marker it writes into ``var_dir``, as `migrate` would: the worker checks it)."""
    write_instance_marker(var_dir)
    return clean_environment(
        VAR_DIR=str(var_dir),
        DEBUG="1",
        DATABASE_URL=database_url_for_other_processes(),
        TRAINING_ENGINE_THREADS="1",
        TRAINING_HEARTBEAT_S="1",
        **overrides,
    )


def test_a_worker_restarted_after_a_kill_interrupts_its_run_at_once_and_it_resumes(
    settings, tmp_path, api_client, manager, tiny_model, judged_campaign, worker
):
    # The worker process must find the same database, snapshot files and run directories.
    var_dir = tmp_path / "var"
    settings.DATASETS_DIR, settings.TRAINING_DIR = var_dir / "datasets", var_dir / "training"
    from labeling.datasets import BuildParams
    from labeling.services.datasets import dataset_build

    snapshot, _ = dataset_build(
        campaigns=[judged_campaign], params=BuildParams(kind="sft", method="majority"), created_by=manager
    )
    # No periodic checkpoint: the only one is the engine's own as it stops, its worker gone.
    run = launch_sft(tiny_model, snapshot, manager, max_steps=1000, save_steps=100_000)
    environment = worker_environment(var_dir, WORKER_NAME="gpu-1", TRAINING_AUTO_RESUME="0")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--poll", "0.2"],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: step_of(run) >= 3, timeout_s=120, what="the worker process to train a few steps")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    spec_path = settings.TRAINING_DIR / "runs" / str(run.pk) / "spec.json"
    # The engine gets SIGTERM when its worker dies (PR_SET_PDEATHSIG), checkpoints and stops; nobody
    # reads its events any more.
    wait_until(lambda: not engine_processes(spec_path), timeout_s=60, what="the orphaned engine to stop")
    run.refresh_from_db()
    assert run.status == JobStatus.RUNNING  # nobody was left to say otherwise

    # The worker restarted under its name knows the run was its own: no waiting for a stale heartbeat.
    restarted = subprocess.run(
        [sys.executable, "manage.py", "worker", "--once"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restarted.returncode == 0, restarted.stderr
    run.refresh_from_db()
    assert run.status == JobStatus.INTERRUPTED and "resume" in run.error, restarted.stdout + restarted.stderr
    # The checkpoint the engine wrote as it stopped is listed, though its event was never read.
    (checkpoint,) = run.checkpoints
    assert [checkpoint["path"]] == checkpoints_on_disk(run) and checkpoint["step"] >= 3

    api_client.force_authenticate(manager)
    resumed = api_client.post(f"/api/training/runs/{run.pk}/resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
    assert worker.run_once()
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.spec["resume_from"] == "latest" and run.step == 1000
    # Resumed from a checkpoint, not started over: the first steps were logged once only.
    assert RunMetric.objects.filter(run=run, step=1, values__has_key="loss").count() == 1
    assert run.round.status == Round.Status.SUCCEEDED
