"""Errors a user can cause in labeling. Each carries a message fit to show as it is."""

from __future__ import annotations


class LabelingError(Exception):
    """Base class; ``message`` is shown to the user, ``errors`` holds field errors if any."""

    status_code = 400

    def __init__(self, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class NotFound(LabelingError):
    """The object does not exist, or the user may not know that it does."""

    status_code = 404


class Conflict(LabelingError):
    """The request is valid but the state it acts on has moved on."""

    status_code = 409


class LeaseLost(Conflict):
    pass


class CampaignNotActive(Conflict):
    pass
