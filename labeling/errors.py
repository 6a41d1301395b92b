"""Errors a user can cause in labeling. Each carries a message fit to show as it is."""

from __future__ import annotations

from rlhf_platform.errors import UserError


class LabelingError(UserError):
    """Bad input; ``errors`` holds field errors if any."""


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
