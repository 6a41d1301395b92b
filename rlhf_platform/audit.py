"""The audit log: who changed what, when, with before and after where a value changed.

Entries are django-auditlog's ``LogEntry`` rows, written explicitly by the service that makes
the change, inside its transaction (an action that is rolled back leaves no entry), never from
model signals: the same models are saved on hot paths (a run's progress every step, a campaign's
counters) that are nobody's action. What the action was goes in ``additional_data["action"]``
(one of ``Action``) with its details beside it; ``changes`` holds ``{field: [before, after]}``,
auditlog's own shape, so its admin shows it too. ``actor`` is None for the system (the worker,
a command run without a user).
"""

from __future__ import annotations

from typing import Any

from auditlog.models import LogEntry
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models


class Action(models.TextChoices):
    PROJECT_CREATE = "project.create", "Project created"
    PROJECT_UPDATE = "project.update", "Project changed"
    PROJECT_DELETE = "project.delete", "Project deleted"
    CAMPAIGN_CREATE = "campaign.create", "Campaign created"
    CAMPAIGN_UPDATE = "campaign.update", "Campaign settings changed"
    CAMPAIGN_STATUS = "campaign.status", "Campaign status changed"
    CAMPAIGN_POOL = "campaign.pool", "Reviewer pool changed"
    CAMPAIGN_DELETE = "campaign.delete", "Campaign deleted"
    TASKS_IMPORT = "tasks.import", "Tasks imported"
    DATASET_BUILD = "dataset.build", "Dataset built"
    TASK_REQUEUE = "task.requeue", "Task re-queued for more votes"
    ROUND_LAUNCH = "round.launch", "Round launched"
    ROUND_CANCEL = "round.cancel", "Round cancelled"
    RUN_CANCEL = "run.cancel", "Run cancelled"
    RUN_RESUME = "run.resume", "Run resumed"
    MODEL_REGISTER = "model.register", "Model registered"
    SWEEP_LAUNCH = "sweep.launch", "Sweep launched"
    SWEEP_CANCEL = "sweep.cancel", "Sweep cancelled"
    SWEEP_PROMOTE = "sweep.promote", "Best trial of a sweep promoted"
    GENERATION_CREATE = "generation.create", "Generation job started"
    GENERATION_CANCEL = "generation.cancel", "Generation job cancelled"
    GENERATION_RESUME = "generation.resume", "Generation job resumed"
    REVIEW_START = "review.start", "A/B review started"
    TOKEN_CREATE = "token.create", "API token created"
    TOKEN_REVOKE = "token.revoke", "API token revoked"
    USER_INVITE = "user.invite", "Person invited"
    USER_CREATE = "user.create", "Person created with a password"
    USER_PASSWORD_LINK = "user.password_link", "Set-password link issued"
    USER_PASSWORD_SET = "user.password_set", "Password set through a link"
    USER_ROLES = "user.roles", "Roles changed"
    USER_ACTIVE = "user.active", "Person activated or deactivated"
    TEAM_CREATE = "team.create", "Team created"
    TEAM_MEMBERS = "team.members", "Team members changed"
    TEAM_DELETE = "team.delete", "Team deleted"


# auditlog's own kind of entry (create, update, delete), for its admin and its filters.
CREATING = {
    Action.PROJECT_CREATE, Action.CAMPAIGN_CREATE, Action.DATASET_BUILD, Action.ROUND_LAUNCH,
    Action.MODEL_REGISTER, Action.GENERATION_CREATE, Action.REVIEW_START, Action.TOKEN_CREATE,
    Action.USER_INVITE, Action.USER_CREATE, Action.TEAM_CREATE, Action.SWEEP_LAUNCH,
}  # fmt: skip
DELETING = {Action.PROJECT_DELETE, Action.CAMPAIGN_DELETE, Action.TEAM_DELETE}


def audit_record(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: Action,
    target: models.Model,
    changes: dict[str, tuple[Any, Any]] | None = None,
    **details: Any,
) -> LogEntry:
    """Record ``action`` by ``actor`` on ``target``; call it inside the service's transaction.

    ``changes`` maps each changed field to (before, after), values as JSON would hold them;
    ``details`` are kept beside the action (counts, file names, ids): JSON-serialisable values only.
    """
    person = actor if actor is not None and actor.is_authenticated else None
    kind = (
        LogEntry.Action.CREATE
        if action in CREATING
        else LogEntry.Action.DELETE
        if action in DELETING
        else LogEntry.Action.UPDATE
    )
    return LogEntry.objects.log_create(
        target,
        force_log=True,
        action=kind,
        actor=person,
        actor_email=getattr(person, "email", None) or None,
        changes={field: [before, after] for field, (before, after) in (changes or {}).items()},
        additional_data={"action": action.value, **details},
    )


# The kinds of object actions are recorded on (model names), for the log's filters.
TARGET_TYPES = {
    "project": "Project",
    "campaign": "Campaign",
    "preferencedataset": "Dataset",
    "round": "Training round",
    "trainingrun": "Training run",
    "generationjob": "Generation job",
    "modelartifact": "Model",
    "apitoken": "API token",
    "user": "Person",
    "group": "Team",
}


def changed_fields(instance: models.Model, before: dict[str, Any], fields: list[str]) -> dict[str, tuple[Any, Any]]:
    """``{field: (before, after)}`` for the ``fields`` of ``instance`` whose value differs from ``before``."""
    return {
        field: (before[field], getattr(instance, field))
        for field in fields
        if before.get(field) != getattr(instance, field)
    }
