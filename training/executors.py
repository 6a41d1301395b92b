"""Executors start the engine for the worker. The interface is small, so a Ray executor can be added later.

An executor has ``start(spec_path, workdir) -> handle``. A handle has ``events()`` (the engine's
JSON events, in order, until its stdout closes), ``poll()`` / ``wait()`` (exit status),
``terminate()`` (ask it to stop: it checkpoints and emits ``cancelled``), ``kill()`` (stop it now,
when a stopping worker's grace is over) and ``log_tail()`` (its last stderr lines).
``settings.TRAINING_EXECUTOR`` names the executor class by dotted path.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from training.formatting import terminal_text


class EngineHandle(Protocol):
    def events(self) -> Iterator[dict[str, Any]]: ...
    def poll(self) -> int | None: ...
    def wait(self) -> int: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def log_tail(self) -> str: ...


class Executor(Protocol):
    def start(self, spec_path: Path, workdir: Path) -> EngineHandle: ...


def get_executor() -> Executor:
    return import_string(settings.TRAINING_EXECUTOR)()


class LocalHandle:
    """The engine as a child process in its own process group; stderr is drained by a thread."""

    def __init__(self, process: subprocess.Popen, tail_lines: int) -> None:
        self.process = process
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._stderr_reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_reader.start()

    def events(self) -> Iterator[dict[str, Any]]:
        for line in self.process.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                self._tail.append(terminal_text(line))  # the engine prints only events; keep the rest
                continue
            if isinstance(event, dict) and "event" in event:
                yield event

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self) -> int:
        code = self.process.wait()
        self._stderr_reader.join(timeout=5)
        return code

    def terminate(self) -> None:
        """SIGTERM to the whole process group (every rank under accelerate launch)."""
        with contextlib.suppress(ProcessLookupError):  # already gone: its events say how it ended
            os.killpg(self.process.pid, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the whole process group: it did not stop on SIGTERM within the worker's grace."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def log_tail(self) -> str:
        return "\n".join(self._tail)

    def _drain_stderr(self) -> None:
        # Bytes, split at newlines only: the text stream's universal newlines would make each
        # carriage-return redraw of a progress bar a line of its own and fill the tail with them.
        # Each line is kept as a terminal would show it (last redraw, no colour escapes).
        for raw in self.process.stderr.buffer:
            self._tail.append(terminal_text(raw.decode("utf-8", errors="replace").rstrip("\r\n")))


class LocalExecutor:
    """Runs ``python -m training.engine.run SPEC`` here, or ``accelerate launch`` when TRAINING_GPUS > 1."""

    def start(self, spec_path: Path, workdir: Path) -> LocalHandle:
        gpus = settings.TRAINING_GPUS
        if gpus > 1:
            launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(gpus)]
            command = [*launcher, "-m", "training.engine.run", str(spec_path)]
        else:
            command = [sys.executable, "-m", "training.engine.run", str(spec_path)]
        workdir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, a spec path we wrote
            command,
            cwd=settings.BASE_DIR,
            env=engine_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own process group, so SIGTERM reaches every rank
            preexec_fn=_stop_with_parent,
        )
        return LocalHandle(process, settings.TRAINING_LOG_TAIL_LINES)


def engine_environment() -> dict[str, str]:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    environment.pop("DJANGO_SETTINGS_MODULE", None)  # the engine never imports Django
    threads = settings.TRAINING_ENGINE_THREADS
    if threads:
        environment.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return environment


PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:
    """In the child: get SIGTERM when the worker dies, so the engine checkpoints instead of running orphaned."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
