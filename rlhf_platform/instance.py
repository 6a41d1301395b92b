"""The instance marker: proof that a worker sees the same VAR_DIR as the web server.

The web server and the worker share the database and ``VAR_DIR`` (snapshots, uploads waiting for
an import, run directories, models). A worker started on another machine with a VAR_DIR of its
own would still find the runs in the database, claim them, fail to read their data and write
checkpoints nobody else sees. So ``migrate`` stores a random id in the database (``Instance``)
and writes it to ``VAR_DIR/instance-id``; a worker compares the two before it claims anything and
refuses to start when the file is missing or holds another id. ``restore`` writes the file again
to match the restored database, so a restored instance passes.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError
from django.db import transaction

from rlhf_platform.models import Instance

MARKER_FILE_NAME = "instance-id"


def instance_marker_path() -> Path:
    return Path(settings.VAR_DIR) / MARKER_FILE_NAME


@transaction.atomic
def instance_marker_ensure() -> str:
    """The instance's marker, created once, and written to VAR_DIR when the file is missing or differs.

    Called by ``migrate`` (post_migrate) and by ``restore``: both are run by an operator on the
    instance's own VAR_DIR, whose marker file then follows the database. The row is locked so that
    two processes migrating at once agree on one id.
    """
    instance = Instance.objects.select_for_update().order_by("pk").first()
    if instance is None:
        instance = Instance.objects.create(marker=secrets.token_hex(16))
    path = instance_marker_path()
    if _read_marker(path) != instance.marker:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole or not at all: a worker reading it at that moment never sees half an id.
        partial = path.with_name(f".{MARKER_FILE_NAME}.{os.getpid()}")
        partial.write_text(instance.marker + "\n")
        os.replace(partial, path)
    return instance.marker


def _read_marker(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def worker_require_shared_var_dir() -> None:
    """Raise ``CommandError`` (the worker refuses to start) unless VAR_DIR holds this database's marker."""
    instance = Instance.objects.order_by("pk").first()
    if instance is None:
        raise CommandError("The database has no instance marker yet: run `manage.py migrate` first.")
    path = instance_marker_path()
    found = _read_marker(path)
    sharing = (
        "The worker and the web server must use the same VAR_DIR (the same directory, at the same path: "
        "a shared or network mount on another machine) and the same environment (DATABASE_URL, SECRET_KEY, "
        "REDIS_URL, ...)."
    )
    if found is None:
        raise CommandError(
            f"This worker cannot see the web server's VAR_DIR: {path} is missing. {sharing} If {settings.VAR_DIR} "
            "is the instance's own VAR_DIR and the file was lost, `manage.py migrate` run with it writes it again."
        )
    if found != instance.marker:
        raise CommandError(
            f"This worker cannot see the web server's VAR_DIR: {path} belongs to another instance (it holds "
            f"{found[:12]!r}, the database {instance.marker[:12]!r}). {sharing}"
        )
