"""Launching rounds, and the transitions people ask for: cancel and resume.

A round is an ordered list of runs, each waiting for the one before it. It is queued until one of
its runs starts (``round_mark_running``), which may be after other rounds' runs. Models flow like this: a
policy stage (pretrain, sft, dpo, ppo) trains the newest policy of the round (the base model at
first); a reward stage starts from that policy too, and its output becomes the reward model of a
later PPO stage. A failed or cancelled stage stops the round; later stages are cancelled with the
reason. Launch checks everything it can before writing anything: stage requirements, and the
engine's own spec checks (``load_spec``) against a sample of the exported data.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labeling.models import PreferenceDataset
from training import stage_data
from training.errors import Conflict, TrainingError
from training.models import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    RESUMABLE_STATUSES,
    JobStatus,
    ModelArtifact,
    Round,
    Stage,
    TrainingRun,
)
from training.realtime import notify_round, notify_run
from training.specs import LaunchError, build_spec, check_spec, settings_for

PRESET_STAGES = {
    Round.Preset.SFT_REWARD_PPO: ["sft", "reward", "ppo"],
    Round.Preset.SFT_DPO: ["sft", "dpo"],
    Round.Preset.PRETRAIN_SFT: ["pretrain", "sft"],
}
SNAPSHOT_STAGES = ("sft", "reward", "dpo", "ppo")
# Rows exported per stage when checking a launch: enough for the engine to see the columns.
CHECK_ROWS = 20


def round_launch(
    *,
    name: str,
    preset: str,
    base_model: ModelArtifact,
    launched_by: AbstractBaseUser | None,
    stage: str | None = None,
    dataset: PreferenceDataset | None = None,
    pretrain_dataset: str = "",
    reward_model: ModelArtifact | None = None,
    settings: dict[str, Any] | None = None,
    stage_settings: dict[str, dict[str, Any]] | None = None,
) -> Round:
    """Check and queue a round: the round and its first run queued, the others waiting.

    Raises ``TrainingError``, writing nothing.
    """
    settings, stage_settings = settings or {}, stage_settings or {}
    stages = _stages_of(preset, stage)
    _check_inputs(stages, base_model, dataset, pretrain_dataset, reward_model)
    for stage_name in stage_settings:
        if stage_name not in stages:
            raise TrainingError(
                f"stage_settings names {stage_name!r}, which is not a stage of this round.",
                {"stage_settings": stage_name},
            )
    _check_specs(stages, base_model, dataset, pretrain_dataset, reward_model, settings, stage_settings)
    with transaction.atomic():
        round_ = Round.objects.create(
            name=(name or "").strip()[:200] or f"{' → '.join(stages)} on {base_model.name}"[:200],
            preset=preset,
            status=Round.Status.QUEUED,
            base_model=base_model,
            dataset=dataset,
            pretrain_dataset=pretrain_dataset,
            reward_model=reward_model,
            stage_settings={"shared": settings, "stages": stage_settings},
            launched_by=launched_by,
        )
        previous = None
        for position, stage_name in enumerate(stages):
            run = TrainingRun.objects.create(
                round=round_,
                position=position,
                depends_on=previous,
                stage=stage_name,
                status=JobStatus.QUEUED if previous is None else JobStatus.WAITING,
                params=settings_for(stage_name, settings, stage_settings),
                input_model=base_model if previous is None else None,
                reward_model=reward_model if stage_name == "ppo" and "reward" not in stages else None,
                dataset=dataset if stage_name in SNAPSHOT_STAGES else None,
                text_dataset=pretrain_dataset if stage_name == "pretrain" else "",
                launched_by=launched_by,
            )
            notify_run(run)
            previous = run
    return round_


@transaction.atomic
def run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Cancel a run. A running one is asked to stop (the worker sends SIGTERM; the engine checkpoints);
    any other unfinished one stops at once. Either way its round stops. Locks the run's row."""
    run = TrainingRun.objects.select_for_update().get(pk=run.pk)
    if run.status in FINAL_STATUSES:
        raise Conflict(f"The run already {run.status}; there is nothing to cancel.")
    if run.status == JobStatus.RUNNING:
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
        notify_run(run)
        return run
    run.status, run.finished_at, run.error = JobStatus.CANCELLED, timezone.now(), "Cancelled before it ran to the end."
    run.save(update_fields=["status", "finished_at", "error"])
    notify_run(run)
    if run.round_id is not None:
        round_stop(round_=run.round, status=Round.Status.CANCELLED, reason=f"The {run.stage} stage was cancelled.")
    return run


@transaction.atomic
def round_cancel(*, round_: Round) -> Round:
    """Cancel the round's unfinished runs (a running one is asked to stop). Locks the round's runs."""
    runs = list(round_.runs.select_for_update().filter(status__in=[*ACTIVE_STATUSES, JobStatus.INTERRUPTED]))
    if not runs:
        raise Conflict(f"The round already {round_.status}; there is nothing to cancel.")
    for run in runs:
        run.refresh_from_db(fields=["status"])
        if run.status in (*ACTIVE_STATUSES, JobStatus.INTERRUPTED):  # an earlier cancel may have stopped it already
            run_cancel(run=run)
    round_.refresh_from_db()
    return round_


@transaction.atomic
def run_resume(*, run: TrainingRun) -> TrainingRun:
    """Queue an interrupted, cancelled or failed run again, from its last checkpoint.

    The round is queued again (running once the run starts), and its later stages that never
    started wait again. Locks the run's row and the round's.
    """
    run = TrainingRun.objects.select_for_update().get(pk=run.pk)
    if run.status not in RESUMABLE_STATUSES:
        raise Conflict(f"Only interrupted, cancelled or failed runs can resume; this one is {run.status}.")
    if run.depends_on_id is not None and run.depends_on.status != JobStatus.SUCCEEDED:
        raise Conflict(f"The stage before it ({run.depends_on.stage}) has not succeeded; resume that one first.")
    run.status = JobStatus.QUEUED
    run.resume_from = "latest"
    run.cancel_requested = False
    run.error = ""
    run.finished_at = None
    run.save(update_fields=["status", "resume_from", "cancel_requested", "error", "finished_at"])
    notify_run(run)
    if run.round_id is not None:
        round_ = Round.objects.select_for_update().get(pk=run.round_id)
        round_.status, round_.failure_reason, round_.finished_at = Round.Status.QUEUED, "", None
        round_.save(update_fields=["status", "failure_reason", "finished_at"])
        notify_round(round_)
        for later in round_.runs.filter(position__gt=run.position, status=JobStatus.CANCELLED, started_at=None):
            later.status, later.error, later.finished_at = JobStatus.WAITING, "", None
            later.save(update_fields=["status", "error", "finished_at"])
            notify_run(later)
    return run


def round_stop(*, round_: Round, status: str, reason: str) -> None:
    """Stop a round after a stage failed or was cancelled: later waiting stages are cancelled with the reason.

    Runs inside the caller's transaction; locks the round's row.
    """
    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    round_.status, round_.failure_reason, round_.finished_at = status, reason, timezone.now()
    round_.save(update_fields=["status", "failure_reason", "finished_at"])
    notify_round(round_)
    for later in round_.runs.filter(status__in=[JobStatus.WAITING, JobStatus.QUEUED]):
        later.status, later.finished_at = JobStatus.CANCELLED, timezone.now()
        later.error = f"Not run: {reason}"
        later.save(update_fields=["status", "finished_at", "error"])
        notify_run(later)


def round_advance(*, round_: Round) -> None:
    """After a run succeeded: queue the next waiting stage, or mark the round succeeded. Locks the round's row."""
    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    runs = list(round_.runs.order_by("position"))
    for run in runs:
        if run.status == JobStatus.WAITING and (run.depends_on is None or run.depends_on.status == JobStatus.SUCCEEDED):
            run.status = JobStatus.QUEUED
            run.save(update_fields=["status"])
            notify_run(run)
            return
    if all(run.status == JobStatus.SUCCEEDED for run in runs):
        round_.status, round_.finished_at = Round.Status.SUCCEEDED, timezone.now()
        round_.save(update_fields=["status", "finished_at"])
        notify_round(round_)


def round_mark_running(*, round_id: int) -> None:
    """One of the round's runs started: a queued round is running from now on.

    Runs inside the claim's transaction. One conditional UPDATE, so no lock is needed: only a queued
    round changes, and a round already running, finished or stopped keeps its status.
    """
    if Round.objects.filter(pk=round_id, status=Round.Status.QUEUED).update(status=Round.Status.RUNNING):
        notify_round(Round.objects.get(pk=round_id))


# --- launch checks -------------------------------------------------------------------------------


def _stages_of(preset: str, stage: str | None) -> list[str]:
    if preset not in Round.Preset.values:
        raise TrainingError(f"Unknown preset {preset!r}.", {"preset": f"One of {', '.join(Round.Preset.values)}."})
    if preset == Round.Preset.SINGLE:
        if stage not in Stage.values:
            raise TrainingError("Choose the stage to run.", {"stage": f"One of {', '.join(Stage.values)}."})
        return [stage]
    return PRESET_STAGES[preset]


def _check_inputs(
    stages: list[str],
    base_model: ModelArtifact,
    dataset: PreferenceDataset | None,
    pretrain_dataset: str,
    reward_model: ModelArtifact | None,
) -> None:
    if base_model.kind == ModelArtifact.Kind.REWARD_MODEL:
        raise TrainingError("The base model is a reward model; choose a causal LM.", {"base_model": "Not a policy."})
    if any(stage in SNAPSHOT_STAGES for stage in stages):
        if dataset is None:
            first = next(stage for stage in stages if stage in SNAPSHOT_STAGES)
            raise TrainingError(f"The {first} stage needs a dataset snapshot.", {"dataset": "This field is required."})
        if not dataset.path.is_file():
            raise TrainingError(f"The snapshot's file {dataset.path} is missing.", {"dataset": "File missing."})
        for stage in stages:
            try:
                stage_data.check_snapshot_kind(stage=stage, kind=dataset.kind, dataset_name=dataset.name)
            except stage_data.StageDataError as error:
                raise TrainingError(str(error), {"dataset": str(error)}) from None
    if "pretrain" in stages:
        if not pretrain_dataset:
            raise TrainingError(
                "The pretrain stage needs a local text dataset.", {"pretrain_dataset": "This field is required."}
            )
        if not Path(pretrain_dataset).exists():
            raise TrainingError(
                f"{pretrain_dataset} does not exist on this machine.", {"pretrain_dataset": "No such local path."}
            )
    if "ppo" in stages:
        trains_reward = "reward" in stages[: stages.index("ppo")]
        if not trains_reward and reward_model is None:
            raise TrainingError(
                "PPO needs a reward model: add a reward stage before it (preset sft_reward_ppo) "
                "or choose a registered reward model.",
                {"reward_model": "This field is required for PPO."},
            )
    if reward_model is not None and reward_model.kind != ModelArtifact.Kind.REWARD_MODEL:
        raise TrainingError(f"{reward_model.name} is not a reward model.", {"reward_model": "Not a reward model."})


def _check_specs(
    stages: list[str],
    base_model: ModelArtifact,
    dataset: PreferenceDataset | None,
    pretrain_dataset: str,
    reward_model: ModelArtifact | None,
    settings: dict[str, Any],
    stage_settings: dict[str, dict[str, Any]],
) -> None:
    """Build each stage's spec against a sample of its data and stand-ins for models earlier stages will make."""
    with tempfile.TemporaryDirectory(prefix="launch-check-") as work:
        work_dir = Path(work)
        stand_in = _stand_in_model(work_dir / "earlier-stage-model")
        for index, stage in enumerate(stages):
            model, gguf_file = (base_model.path, base_model.gguf_file) if index == 0 else (str(stand_in), "")
            if stage == "pretrain":
                train_path, eval_path = pretrain_dataset, None
            else:
                try:
                    train_path, eval_path = stage_data.export_stage_files(
                        stage=stage,
                        kind=dataset.kind,
                        snapshot=dataset.path,
                        directory=work_dir / stage,
                        limit=CHECK_ROWS,
                    )
                except stage_data.StageDataError as error:
                    raise TrainingError(str(error), {"dataset": str(error)}) from None
            reward_path = None
            if stage == "ppo":
                reward_path = reward_model.path if reward_model is not None else str(stand_in)
            try:
                spec = build_spec(
                    stage=stage,
                    settings=settings_for(stage, settings, stage_settings),
                    model=model,
                    gguf_file=gguf_file,
                    output_dir=str(work_dir / "out" / stage),
                    dataset=train_path,
                    eval_dataset=eval_path,
                    reward_model=reward_path,
                )
                check_spec(spec)
            except LaunchError as error:
                raise TrainingError(error.message, {error.field: error.message}) from None


def _stand_in_model(directory: Path) -> Path:
    """An empty model directory that passes the engine's path checks for a model not trained yet."""
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"stand_in": True}))
    (directory / "model.safetensors").write_bytes(b"")
    return directory
