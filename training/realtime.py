"""Live updates of runs and generation jobs over Channels groups.

Groups (a consumer joins the ones its page shows):

- ``training-run-<id>``: one training run.
- ``training-round-<id>``: every run of one round.
- ``training-runs``: every run and generation job (list pages).
- ``training-generation-<id>``: one generation job.

Message: ``{"type": "run.update", "run": <run_payload>}`` (a consumer's ``run_update`` handler gets
it), ``{"type": "round.update", "round": <round_payload>}`` (to the round's group, when the round's
own status changes), or ``{"type": "generation.update", "job": <generation_payload>}``.
``run_payload`` carries the run's status, progress and latest metrics, and ``point`` (``{"id",
"kind", "step", "values"}``) when the update came with a new metric point, so a page gets it at once
(the id lets it tell a point it has from one it lacks). ``{"type": "log.update", "run_id": <id>,
"log_tail": <text>}`` goes to a run's groups when the worker stores a new log tail (the heartbeat).

Services call ``notify_run`` / ``notify_round`` / ``notify_generation`` inside their transaction: the
message goes out on commit, never from a signal, and never for a change that was rolled back.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from training.models import GenerationJob, Round, TrainingRun

logger = logging.getLogger(__name__)

RUNS_GROUP = "training-runs"


def run_group(run_id: int) -> str:
    return f"training-run-{run_id}"


def round_group(round_id: int) -> str:
    return f"training-round-{round_id}"


def generation_group(job_id: int) -> str:
    return f"training-generation-{job_id}"


def run_payload(run: TrainingRun, *, point: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON a page needs to redraw a run's row, progress bar and headline metrics."""
    payload = {
        "id": run.pk,
        "round_id": run.round_id,
        "stage": run.stage,
        "status": run.status,
        "status_display": run.get_status_display(),
        "step": run.step,
        "total_steps": run.total_steps,
        "progress": run.progress_fraction,
        "epoch": run.epoch,
        "tokens_seen": run.tokens_seen,
        "eta_s": run.eta_s,
        "latest_metrics": run.latest_metrics,
        "checkpoints": len(run.checkpoints),
        "output_model_id": run.output_model_id,
        "cancel_requested": run.cancel_requested,
        "error": run.error,
        "heartbeat_at": run.heartbeat_at.isoformat() if run.heartbeat_at else None,
    }
    if point is not None:
        payload["point"] = point
    return payload


def round_payload(round_: Round) -> dict[str, Any]:
    """The JSON a round page needs to redraw the round's own status badge."""
    return {
        "id": round_.pk,
        "status": round_.status,
        "status_display": round_.get_status_display(),
        "failure_reason": round_.failure_reason,
    }


def generation_payload(job: GenerationJob) -> dict[str, Any]:
    return {
        "id": job.pk,
        "status": job.status,
        "step": job.step,
        "total_steps": job.total_steps,
        "progress": job.progress_fraction,
        "campaign_id": job.campaign_id,
        "error": job.error,
    }


def notify_run(run: TrainingRun, *, point: dict[str, Any] | None = None) -> None:
    """Send ``run.update`` to the run's, its round's and the list groups once the transaction commits."""
    message = {"type": "run.update", "run": run_payload(run, point=point)}
    groups = [run_group(run.pk), RUNS_GROUP]
    if run.round_id is not None:
        groups.append(round_group(run.round_id))
    transaction.on_commit(lambda: _send(groups, message))


def notify_round(round_: Round) -> None:
    """Send ``round.update`` to the round's group once the transaction commits."""
    message = {"type": "round.update", "round": round_payload(round_)}
    transaction.on_commit(lambda: _send([round_group(round_.pk)], message))


def notify_generation(job: GenerationJob) -> None:
    """Send ``generation.update`` to the job's and the list groups once the transaction commits."""
    message = {"type": "generation.update", "job": generation_payload(job)}
    transaction.on_commit(lambda: _send([generation_group(job.pk), RUNS_GROUP], message))


def notify_log(job: TrainingRun | GenerationJob, *, log_tail: str) -> None:
    """Send a run's new log tail to its and its round's groups once the transaction commits.

    Generation job pages re-read their state over HTTP (nothing follows their group), so their
    log is not sent.
    """
    if not isinstance(job, TrainingRun):
        return
    message = {"type": "log.update", "run_id": job.pk, "log_tail": log_tail}
    groups = [run_group(job.pk)] + ([round_group(job.round_id)] if job.round_id is not None else [])
    transaction.on_commit(lambda: _send(groups, message))


def _send(groups: list[str], message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:  # a page missing one update must never fail the run that caused it
            logger.warning("could not send %s to %s", message["type"], group, exc_info=True)
