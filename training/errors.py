"""Errors a user can cause in training. Each carries a message fit to show as it is."""

from __future__ import annotations

from rlhf_platform.errors import UserError


class TrainingError(UserError):
    """Bad input; ``errors`` holds field errors if any. Nothing was written."""


class Conflict(TrainingError):
    """The request is valid but the run's state does not allow it (e.g. resuming a finished run)."""

    status_code = 409


class WorkerNameInUse(TrainingError):
    """A live worker already holds the name another one asked for (``manage.py worker --name``)."""

    status_code = 409
