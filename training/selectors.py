"""Reads of the training app for pages and the API."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from training.models import GenerationJob, ModelArtifact, Round, RunMetric, TrainingRun, is_metric_value
from training.realtime import round_payload, run_payload

RUN_RELATED = ("round", "input_model", "reward_model", "output_model", "dataset", "launched_by")


def model_list() -> QuerySet[ModelArtifact]:
    return ModelArtifact.objects.select_related("base_model", "produced_by", "dataset")


def model_get(*, model_id: int) -> ModelArtifact:
    return get_object_or_404(model_list(), pk=model_id)


def round_list() -> QuerySet[Round]:
    return Round.objects.select_related("base_model", "dataset", "reward_model", "launched_by")


def round_get(*, round_id: int) -> Round:
    return get_object_or_404(round_list(), pk=round_id)


def round_runs(*, round_: Round) -> QuerySet[TrainingRun]:
    return round_.runs.select_related(*RUN_RELATED).order_by("position")


def run_list(*, status: str | None = None, stage: str | None = None) -> QuerySet[TrainingRun]:
    runs = TrainingRun.objects.select_related(*RUN_RELATED)
    if status:
        runs = runs.filter(status=status)
    if stage:
        runs = runs.filter(stage=stage)
    return runs


def run_get(*, run_id: int) -> TrainingRun:
    return get_object_or_404(run_list(), pk=run_id)


def run_metric_series(*, run: TrainingRun) -> dict[str, dict[str, list[list[float]]]]:
    """Per kind (train, eval) and metric name, the ``[step, value]`` points in step order, for charts."""
    series: dict[str, dict[str, list[list[float]]]] = {"train": defaultdict(list), "eval": defaultdict(list)}
    points = RunMetric.objects.filter(run=run).order_by("step", "id").values_list("kind", "step", "values")
    for kind, step, values in points:
        for name, value in values.items():
            series[kind][name].append([step, value])
    return {kind: dict(by_name) for kind, by_name in series.items()}


def generation_job_list() -> QuerySet[GenerationJob]:
    return GenerationJob.objects.select_related("model", "compare_with", "source_campaign", "campaign")


def generation_job_get(*, job_id: int) -> GenerationJob:
    return get_object_or_404(generation_job_list(), pk=job_id)


# --- live pages -------------------------------------------------------------------------------

# Metric points a live page's websocket sends per poll at most; a page back after a long gap catches up.
POINTS_PER_POLL = 500


def round_run_ids(round_id: int) -> list[int]:
    return list(TrainingRun.objects.filter(round_id=round_id).order_by("position").values_list("pk", flat=True))


def existing_run_ids(run_ids: list[int]) -> list[int]:
    return list(TrainingRun.objects.filter(pk__in=run_ids).order_by("pk").values_list("pk", flat=True))


def live_state(run_ids: list[int], after_point_id: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The runs' payloads, and their metric points with an id above ``after_point_id`` (oldest first)."""
    runs = [run_payload(run) for run in TrainingRun.objects.filter(pk__in=run_ids).order_by("position", "pk")]
    points = [
        {"id": pk, "run_id": run_id, "kind": kind, "step": step, "values": values}
        for pk, run_id, kind, step, values in RunMetric.objects.filter(run_id__in=run_ids, pk__gt=after_point_id)
        .order_by("pk")
        .values_list("pk", "run_id", "kind", "step", "values")[:POINTS_PER_POLL]
    ]
    return runs, points


def round_state(round_id: int) -> dict[str, Any] | None:
    """The round's own status for its live page (``training.realtime.round_payload``); None once deleted."""
    round_ = Round.objects.filter(pk=round_id).only("pk", "status", "failure_reason").first()
    return round_payload(round_) if round_ is not None else None


def training_overview(*, limit: int = 50) -> dict[str, Any]:
    """Recent rounds (with their runs), runs launched alone, generation jobs, and the registry's size."""
    return {
        "rounds": Round.objects.select_related("base_model", "dataset").prefetch_related(
            Prefetch("runs", queryset=TrainingRun.objects.order_by("position"))
        )[:limit],
        "single_runs": TrainingRun.objects.filter(round=None).select_related(*RUN_RELATED)[:limit],
        "generation_jobs": GenerationJob.objects.select_related("model", "campaign")[:limit],
        "model_count": ModelArtifact.objects.count(),
    }


def last_point_id(run: TrainingRun) -> int:
    return run.metric_points.order_by("-pk").values_list("pk", flat=True).first() or 0


def models_with_lineage() -> QuerySet[ModelArtifact]:
    """Every registered model with what it came from (base, run, round, dataset) and the campaigns it fed."""
    return ModelArtifact.objects.select_related(
        "base_model", "produced_by__round", "dataset", "created_by"
    ).prefetch_related("generation_jobs__campaign")


def evaluation_table(models: list[ModelArtifact], *, max_rows: int = 20) -> dict[str, Any]:
    """The models' evaluation results side by side: one column per model, one row per metric.

    Only models with results, and only numeric metrics; the metrics most models share come first.
    """
    evaluated = [model for model in models if model.evaluation]
    counts: dict[str, int] = {}
    for model in evaluated:
        for name, value in model.evaluation.items():
            if is_metric_value(value):
                counts[name] = counts.get(name, 0) + 1
    names = sorted(counts, key=lambda name: (-counts[name], name))[:max_rows]
    rows = [{"name": name, "values": [model.evaluation.get(name) for model in evaluated]} for name in names]
    return {"models": evaluated, "rows": rows}
