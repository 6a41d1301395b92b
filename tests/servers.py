"""Servers the tests start as processes of their own, the way `make demo` and production start them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=10)
            return
        # Refused while it starts; a first answer can be slow on a busy machine (URLconf imports).
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def serving(
    commands: list[list[str]], *, environment: dict[str, str], log_path: Path, ready_url: str, timeout: float = 60
) -> Iterator[None]:
    """Run ``commands`` from the repository root, their output in ``log_path``, until ``ready_url`` answers.

    Each runs in a process group of its own, stopped whole on exit: a command such as `make`
    that starts the server and the worker stops with both.
    """
    processes = []
    with log_path.open("w") as log:
        for command in commands:
            processes.append(
                subprocess.Popen(
                    command,
                    cwd=REPO_ROOT,
                    env=environment,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        wait_for(ready_url, timeout=timeout)
        yield
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def daphne(*, environment: dict[str, str], log_path: Path, worker: bool = False) -> Iterator[str]:
    """Daphne on a free port, and with ``worker`` a `manage.py worker` beside it, as `make demo` runs
    them; yields the server's URL once it answers. Their output goes to ``log_path``, for when a test fails."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    commands = [[sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "rlhf_platform.asgi:application"]]
    if worker:
        commands.append([sys.executable, "manage.py", "worker"])
    with serving(commands, environment=environment, log_path=log_path, ready_url=f"{base_url}/healthz"):
        yield base_url


def sign_in(page, base_url: str, username: str, password: str) -> None:
    """Sign in through the real login form of the server at ``base_url`` (signing out whoever was)."""
    page.context.clear_cookies()
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button.primary")
    page.wait_for_load_state()


def write_instance_marker(var_dir: Path) -> None:
    """Write this database's instance marker into ``var_dir``, as `migrate` does on a real instance, so
    that a `manage.py worker` process started on ``var_dir`` accepts it (rlhf_platform/instance.py)."""
    from django.test import override_settings

    from rlhf_platform.instance import instance_marker_ensure

    with override_settings(VAR_DIR=var_dir):
        instance_marker_ensure()
