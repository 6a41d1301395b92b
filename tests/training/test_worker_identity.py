"""A worker's name is stable across restarts, and two live workers never share one."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.utils import timezone

from training.errors import WorkerNameInUse
from training.models import WorkerPresence
from training.services.workers import worker_beat, worker_register, worker_unregister
from training.worker import Worker

pytestmark = pytest.mark.django_db

HOST = socket.gethostname()


def test_its_name_is_the_setting_or_the_host_name(settings):
    settings.WORKER_NAME = ""
    assert Worker(log=lambda message: None).name == HOST
    settings.WORKER_NAME = "gpu-1"
    assert Worker(log=lambda message: None).name == "gpu-1"
    assert Worker(name="gpu-2", log=lambda message: None).name == "gpu-2"


@pytest.fixture
def other_live_process():
    # "worker" on its command line, as `manage.py worker` has.
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "worker"])
    # Until the child has exec'd, its command line is still the parent's (no "worker" in it).
    deadline = time.monotonic() + 30
    while b"worker" not in Path(f"/proc/{process.pid}/cmdline").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    yield process.pid
    process.kill()
    process.wait()


def test_a_second_live_worker_with_the_same_name_is_refused(other_live_process):
    worker_register(name="gpu-1", host=HOST, pid=other_live_process, stale_after_s=120)
    with pytest.raises(WorkerNameInUse) as refused:
        worker_register(name="gpu-1", host=HOST, pid=os.getpid(), stale_after_s=120)
    assert f"pid {other_live_process}" in refused.value.message and "--name" in refused.value.message
    assert WorkerPresence.objects.get(name="gpu-1").pid == other_live_process
    # Alive on this host, it keeps its name however long it was silent (a long database outage).
    WorkerPresence.objects.filter(name="gpu-1").update(seen_at=timezone.now() - dt.timedelta(seconds=3600))
    with pytest.raises(WorkerNameInUse):
        worker_register(name="gpu-1", host=HOST, pid=os.getpid(), stale_after_s=120)


def test_a_process_that_reused_a_dead_worker_s_pid_does_not_hold_its_name():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        worker_register(name="gpu-1", host=HOST, pid=process.pid, stale_after_s=120)
        worker_register(name="gpu-1", host=HOST, pid=os.getpid(), stale_after_s=120)
    finally:
        process.kill()
        process.wait()
    assert WorkerPresence.objects.get(name="gpu-1").pid == os.getpid()


def test_a_live_worker_of_that_name_on_another_host_is_refused_until_it_goes_silent():
    worker_register(name="gpu-1", host="elsewhere", pid=1234, stale_after_s=120)
    with pytest.raises(WorkerNameInUse):
        worker_register(name="gpu-1", host=HOST, pid=os.getpid(), stale_after_s=120)
    WorkerPresence.objects.filter(name="gpu-1").update(seen_at=timezone.now() - dt.timedelta(seconds=121))
    worker_register(name="gpu-1", host=HOST, pid=os.getpid(), stale_after_s=120)
    assert WorkerPresence.objects.get(name="gpu-1").host == HOST


def test_a_restart_takes_over_the_name_of_its_dead_predecessor_at_once():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()  # a worker killed with SIGKILL a moment ago: its beat is fresh, its process gone
    worker_register(name="gpu-1", host=HOST, pid=process.pid, stale_after_s=120)
    worker_register(name="gpu-1", host=HOST, pid=os.getpid(), stale_after_s=120)
    assert WorkerPresence.objects.get(name="gpu-1").pid == os.getpid()


def test_a_worker_whose_name_was_taken_over_learns_it_from_its_beat():
    worker_register(name="gpu-1", host="elsewhere", pid=1234, stale_after_s=120)
    assert worker_beat(name="gpu-1", host="elsewhere", pid=1234)
    WorkerPresence.objects.filter(name="gpu-1").update(seen_at=timezone.now() - dt.timedelta(seconds=121))
    worker_register(name="gpu-1", host=HOST, pid=os.getpid(), stale_after_s=120)
    assert not worker_beat(name="gpu-1", host="elsewhere", pid=1234)
    worker_unregister(name="gpu-1", host="elsewhere", pid=1234)  # not its row any more: left alone
    assert WorkerPresence.objects.filter(name="gpu-1", pid=os.getpid()).exists()
