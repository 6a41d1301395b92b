"""A training run from the worker's side: prepare its data and spec, store its events, finish it.

Working directory of run ``<id>``: ``TRAINING_DIR/runs/<id>/`` with ``data/`` (the snapshot rows
the stage trains on, as JSONL), ``spec.json`` (the spec the engine runs) and ``output/`` (the
engine's output: ``checkpoints/``, ``model/``, ``metrics.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from training import stage_data
from training.engine.data import DataError
from training.engine.stages import STAGES, stage_names
from training.errors import TrainingError
from training.models import JobStatus, ModelArtifact, Round, RunMetric, Stage, TrainingRun, is_metric_value
from training.realtime import notify_run
from training.services.checkpoints import record_checkpoints_at_stop, run_checkpoints_kept
from training.services.evaluation import (
    benchmark_data_dir,
    default_benchmarks,
    evaluation_files,
    evaluation_wiring,
    model_record_evaluation,
)
from training.services.registry import model_register_run_output
from training.services.rounds import round_advance, round_stop
from training.services.sweeps import sweep_trial_report
from training.specs import LaunchError, build_spec

# Event fields that describe the point rather than being a metric of it.
POINT_FIELDS = {"event", "time", "step", "epoch"}


def run_workdir(run: TrainingRun) -> Path:
    return Path(settings.TRAINING_DIR) / "runs" / str(run.pk)


def run_prepare(*, run: TrainingRun) -> Path:
    """Resolve the run's input models, export its data, write ``spec.json``; returns the spec's path.

    Raises ``TrainingError`` when an input is missing (the worker then fails the run with it).
    """
    workdir = run_workdir(run)
    workdir.mkdir(parents=True, exist_ok=True)
    stage = STAGES[run.stage]
    input_model = run.input_model or _policy_from_earlier_stages(run)
    reward_model = run.reward_model
    if reward_model is None and (stage.needs_reward_model or run.stage == Stage.EVALUATE):
        reward_model = _reward_from_earlier_stage(run)
    if run.stage == Stage.EVALUATE and _trains_only_a_reward_model(run):
        input_model = reward_model  # a reward round's verdict is its reward model's accuracy
    if stage.needs_reward_model and reward_model is None:
        raise TrainingError(f"{stage.label} needs a reward model, and no earlier stage of the round produced one.")
    if run.stage == Stage.EVALUATE:
        wiring = _evaluation_wiring(run, input_model, reward_model, workdir)
    else:
        wiring = {"dataset": run.text_dataset, "eval_dataset": None}
        if stage.trains_on == "text" and _round_evaluates(run):
            try:
                corpus = stage_data.split_text_corpus(
                    source=run.text_dataset, directory=workdir / "data", text_field=_text_field(run.params)
                )
            except (stage_data.StageDataError, DataError) as error:
                raise TrainingError(str(error)) from None
            wiring["dataset"], wiring["eval_dataset"] = corpus["train"], corpus["held_out"]
        if stage.reads_snapshot:
            if run.dataset is None or not run.dataset.path.is_file():
                raise TrainingError("The run's dataset snapshot file is missing.")
            try:
                wiring["dataset"], wiring["eval_dataset"] = stage_data.export_stage_files(
                    stage=run.stage, kind=run.dataset.kind, snapshot=run.dataset.path, directory=workdir / "data"
                )
            except stage_data.StageDataError as error:
                raise TrainingError(str(error)) from None
        if stage.needs_reward_model:
            wiring["reward_model"] = reward_model.path
    try:
        spec = build_spec(
            stage=run.stage,
            settings=run.params,
            model=input_model.path,
            gguf_file=input_model.gguf_file,
            output_dir=str(workdir / "output"),
            wiring=wiring,
            resume_from=run.resume_from if stage.trains_on is not None else "",
        )
    except LaunchError as error:
        raise TrainingError(error.message) from None
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    run.input_model, run.reward_model, run.spec, run.workdir = input_model, reward_model, spec, str(workdir)
    run.save(update_fields=["input_model", "reward_model", "spec", "workdir"])
    return spec_path


def _evaluation_wiring(
    run: TrainingRun, model: ModelArtifact, reward_model: ModelArtifact | None, workdir: Path
) -> dict[str, Any]:
    """An evaluate run's held-out files and models: the newest policy against the round's base model."""
    files = evaluation_files(run=run, directory=workdir / "data")
    if model.kind == ModelArtifact.Kind.REWARD_MODEL:
        if "preferences" not in files:
            raise TrainingError("A reward model is evaluated on held-out preference pairs; the snapshot has none.")
        return evaluation_wiring(
            kind="reward", files=files, base_model=None, reward_model_path=None, benchmark_data=None
        )
    base_model = run.round.base_model if run.round_id is not None else None
    data_dir = benchmark_data_dir()
    wiring = evaluation_wiring(
        kind="policy",
        files=files,
        base_model=base_model if base_model is not None and base_model.pk != model.pk else None,
        reward_model_path=reward_model.path if reward_model is not None else None,
        benchmark_data=data_dir,
    )
    if "benchmarks" not in (run.params.get("advanced") or {}):
        wiring["benchmarks"] = default_benchmarks(data_dir)
    return wiring


def run_record_event(*, run: TrainingRun, event: dict[str, Any]) -> None:
    """Store a ``metrics``, ``eval`` or ``checkpoint`` event; other kinds are ignored here. A sweep's
    trial reports its metrics to the sweep's pruner (``sweep_trial_report``), which may cancel it."""
    kind = event.get("event")
    values: dict[str, Any] = {}
    with transaction.atomic():
        if kind in ("metrics", "eval"):
            values = {k: v for k, v in event.items() if k not in POINT_FIELDS and is_metric_value(v)}
            point_kind = RunMetric.Kind.EVAL if kind == "eval" else RunMetric.Kind.TRAIN
            step = int(event.get("step") or 0)
            point = RunMetric.objects.create(
                run=run, kind=point_kind, step=step, epoch=event.get("epoch"), values=values
            )
            run.latest_metrics = {**run.latest_metrics, **values}
            run.save(update_fields=["latest_metrics"])
            notify_run(run, point={"id": point.pk, "kind": point_kind, "step": step, "values": values})
        elif kind == "checkpoint":
            # The engine deleted older checkpoints before telling of this one (save_total_limit).
            written = {"step": event.get("step"), "path": event.get("path")}
            run.checkpoints = run_checkpoints_kept(run=run, written=written)
            run.save(update_fields=["checkpoints"])
            notify_run(run)
    if values and run.round_id is not None:
        # A sweep's trial: its pruner may stop the run here (after the point is stored).
        sweep_trial_report(run=run, step=step, values=values)


@transaction.atomic
def run_succeed(*, run: TrainingRun, final_metrics: dict[str, Any], log_tail: str) -> TrainingRun:
    """The engine finished: register the output model with its lineage (an evaluation's report goes
    on the model it evaluated), and move the round on.

    Locks the run's round (``round_advance``).
    """
    output_model = None
    if STAGES[run.stage].makes is not None:
        output_model = model_register_run_output(
            run=run, output_dir=Path(run.workdir) / "output", final_metrics=final_metrics
        )
    elif "report" in final_metrics and run.input_model_id is not None:
        model_record_evaluation(model=run.input_model, run=run, report=final_metrics["report"])
    run.status, run.finished_at, run.log_tail = JobStatus.SUCCEEDED, timezone.now(), log_tail
    run.final_metrics, run.output_model, run.eta_s = final_metrics, output_model, 0.0
    if run.total_steps:
        run.step = run.total_steps
    run.save(update_fields=["status", "finished_at", "log_tail", "final_metrics", "output_model", "eta_s", "step"])
    notify_run(run)
    if run.round_id is not None:
        round_advance(round_=run.round)
    return run


@transaction.atomic
def run_fail(*, run: TrainingRun, error: str, log_tail: str = "") -> TrainingRun:
    """The run failed with ``error`` (the engine's message); its round stops. Locks the round."""
    run.status, run.finished_at, run.error = JobStatus.FAILED, timezone.now(), error
    run.log_tail = log_tail or run.log_tail
    run.save(update_fields=["status", "finished_at", "error", "log_tail"])
    notify_run(run)
    if run.round_id is not None:
        round_stop(round_=run.round, status=Round.Status.FAILED, reason=f"The {run.stage} stage failed: {error}")
    return run


@transaction.atomic
def run_mark_cancelled(*, run: TrainingRun, checkpoint: str | None, log_tail: str) -> TrainingRun:
    """The engine stopped on a cancel request, after writing ``checkpoint``; the round stops. Locks the round."""
    run.status, run.finished_at, run.log_tail = JobStatus.CANCELLED, timezone.now(), log_tail
    run.error = "Cancelled." + (f" Last checkpoint: {checkpoint}" if checkpoint else "")
    record_checkpoints_at_stop(run)
    run.save(update_fields=["status", "finished_at", "log_tail", "error", "checkpoints", "step"])
    notify_run(run)
    if run.round_id is not None:
        round_stop(round_=run.round, status=Round.Status.CANCELLED, reason=f"The {run.stage} stage was cancelled.")
    return run


def _policy_from_earlier_stages(run: TrainingRun) -> ModelArtifact:
    """The newest policy of the round before this run: the last non-reward stage's output, or the base model."""
    earlier = (
        run.round.runs.filter(
            position__lt=run.position, status=JobStatus.SUCCEEDED, stage__in=stage_names(makes="policy")
        )
        .order_by("-position")
        .first()
    )
    if earlier is not None and earlier.output_model is not None:
        return earlier.output_model
    return run.round.base_model


def _text_field(params: dict[str, Any]) -> str:
    """The pretrain stage's text column, as its spec will have it (``advanced`` wins, as in build_spec)."""
    return (params.get("advanced") or {}).get("text_field") or params.get("text_field") or "text"


def _round_evaluates(run: TrainingRun) -> bool:
    """The run's round ends with an evaluate stage (which then needs text the run did not train on)."""
    return run.round_id is not None and run.round.runs.filter(stage=Stage.EVALUATE).exists()


def _trains_only_a_reward_model(run: TrainingRun) -> bool:
    stages = [STAGES[name] for name in run.round.runs.values_list("stage", flat=True)] if run.round_id else []
    return any(s.makes == "reward_model" for s in stages) and not any(s.makes == "policy" for s in stages)


def _reward_from_earlier_stage(run: TrainingRun) -> ModelArtifact | None:
    if run.round_id is None:
        return None
    earlier = run.round.runs.filter(
        position__lt=run.position, stage__in=stage_names(makes="reward_model"), status=JobStatus.SUCCEEDED
    )
    found = earlier.order_by("-position").first()
    return found.output_model if found is not None else None
