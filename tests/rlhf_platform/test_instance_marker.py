"""The instance marker: a worker refuses to start unless it sees the web server's VAR_DIR.

A worker on another machine with a VAR_DIR of its own would claim runs whose data and run
directories it cannot read, and write checkpoints the web server never sees. ``migrate`` stores a
random id in the database and writes it under VAR_DIR; the worker compares the two before it
claims anything.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from rlhf_platform.instance import MARKER_FILE_NAME, instance_marker_ensure, worker_require_shared_var_dir
from rlhf_platform.models import Instance
from tests.rlhf_platform.test_backup import fresh_instance, manage, small_archive, source_var  # noqa: F401


@pytest.fixture
def var_dir(settings, tmp_path) -> Path:
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    return settings.VAR_DIR


def run_worker_once() -> str:
    # The refusals come before the worker claims anything (it would use its own connections).
    out = io.StringIO()
    call_command("worker", "--once", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_migrate_stores_the_marker_and_writes_it_under_var_dir(var_dir):
    call_command("migrate", verbosity=0)

    marker = Instance.objects.get().marker
    assert len(marker) >= 32
    assert (var_dir / MARKER_FILE_NAME).read_text().strip() == marker
    call_command("migrate", verbosity=0)
    assert Instance.objects.get().marker == marker  # kept: it names the instance, not the run of migrate


@pytest.mark.django_db
def test_a_worker_that_sees_the_marker_may_start(var_dir):
    instance_marker_ensure()

    worker_require_shared_var_dir()  # no error (the worker itself starts in the restore tests below)


@pytest.mark.django_db
def test_a_worker_without_the_marker_refuses_to_start_and_says_why(var_dir):
    instance_marker_ensure()
    (var_dir / MARKER_FILE_NAME).unlink()

    with pytest.raises(CommandError) as refused:
        run_worker_once()

    message = str(refused.value)
    assert str(var_dir / MARKER_FILE_NAME) in message
    assert "same VAR_DIR" in message


@pytest.mark.django_db
def test_a_worker_with_another_instances_marker_refuses_to_start(var_dir):
    instance_marker_ensure()
    (var_dir / MARKER_FILE_NAME).write_text("another-instance\n")

    with pytest.raises(CommandError) as refused:
        run_worker_once()

    assert "another instance" in str(refused.value)


@pytest.mark.django_db
def test_a_database_without_a_marker_is_refused_until_migrate(var_dir):
    Instance.objects.all().delete()

    with pytest.raises(CommandError) as refused:
        run_worker_once()

    assert "manage.py migrate" in str(refused.value)


def test_a_restored_instance_passes_the_check(small_archive, fresh_instance):  # noqa: F811
    # Migrated first, as an operator who set up the new machine by the book would have: the marker
    # that migrate wrote must neither block the restore nor survive it.
    target = fresh_instance("restored-marker")
    assert manage(target, "migrate", "--noinput").returncode == 0
    assert (Path(target["VAR_DIR"]) / MARKER_FILE_NAME).exists()

    restored = manage(target, "restore", str(small_archive))

    assert restored.returncode == 0, restored.stderr
    worker = manage(target, "worker", "--once")
    assert worker.returncode == 0, worker.stderr
    assert "nothing queued" in worker.stdout


def test_the_marker_travels_with_a_backup(fresh_instance, tmp_path):  # noqa: F811
    source = fresh_instance("marker-source")
    assert manage(source, "migrate", "--noinput").returncode == 0
    archive = tmp_path / "marked.tar"
    assert manage(source, "backup", str(archive)).returncode == 0
    target = fresh_instance("marker-target")

    assert manage(target, "restore", str(archive)).returncode == 0

    source_marker = (Path(source["VAR_DIR"]) / MARKER_FILE_NAME).read_text()
    assert (Path(target["VAR_DIR"]) / MARKER_FILE_NAME).read_text() == source_marker
    assert manage(target, "worker", "--once").returncode == 0
    elsewhere = manage({**target, "VAR_DIR": str(tmp_path / "not-shared")}, "worker", "--once")
    assert elsewhere.returncode != 0
    assert "cannot see" in elsewhere.stderr
