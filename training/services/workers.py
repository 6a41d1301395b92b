"""Worker identity: one live process per worker name, so a restarted worker knows its own runs.

A worker's name (``WORKER_NAME`` or ``--name``; the host name by default) outlives its process: a
worker restarted by its service manager finds the runs it held when it died under the same name
and recovers them at once, without waiting ``TRAINING_STALE_AFTER_S`` for their heartbeats to go
stale. That is only sound while two live processes never share a name, which ``worker_register``
enforces: the ``WorkerPresence`` row names the process that holds the name and when it last beat.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from training.errors import WorkerNameInUse
from training.models import WorkerPresence


@transaction.atomic
def worker_register(*, name: str, host: str, pid: int, stale_after_s: float) -> WorkerPresence:
    """Take ``name`` for the process ``host``/``pid``; raises ``WorkerNameInUse`` while another live process holds it.

    On this host, the holder counts as dead as soon as its process is gone (a crash, ``kill -9``:
    the usual restart); on another host, once it has not beaten for ``stale_after_s``. Locks the
    name's row, so two processes starting together cannot both take it.
    """
    now = timezone.now()
    WorkerPresence.objects.get_or_create(
        name=name, defaults={"host": host, "pid": pid, "started_at": now, "seen_at": now}
    )
    presence = WorkerPresence.objects.select_for_update().get(name=name)
    held_by_other = (presence.host, presence.pid) != (host, pid)
    # On this host the process table says for sure; another host's worker is alive while it beats.
    if presence.host == host:
        alive = held_by_other and _worker_process_alive(presence.pid)
    else:
        alive = presence.seen_at >= now - dt.timedelta(seconds=stale_after_s)
    if alive:
        seen = (now - presence.seen_at).total_seconds()
        raise WorkerNameInUse(
            f"A worker named {name!r} is running on {presence.host} (pid {presence.pid}, seen {seen:.0f} s ago). "
            "Stop it first, or give this one another name (--name or WORKER_NAME)."
        )
    presence.host, presence.pid, presence.started_at, presence.seen_at = host, pid, now, now
    presence.save(update_fields=["host", "pid", "started_at", "seen_at"])
    return presence


def worker_beat(*, name: str, host: str, pid: int) -> bool:
    """Record that the process holding ``name`` is alive; False when another process took the name over
    (this one was silent for longer than ``TRAINING_STALE_AFTER_S``). One UPDATE; no lock needed."""
    return bool(WorkerPresence.objects.filter(name=name, host=host, pid=pid).update(seen_at=timezone.now()))


def worker_unregister(*, name: str, host: str, pid: int) -> None:
    """Free ``name`` as a worker exits cleanly; a name another process took over meanwhile is left to it."""
    WorkerPresence.objects.filter(name=name, host=host, pid=pid).delete()


def _worker_process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is a worker (not a process that reused its pid)."""
    try:
        os.kill(pid, 0)  # signal 0: checks, sends nothing
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        return b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no /proc (not Linux): the pid's existence is all there is to go by
        return True
