"""Reads for the training pages and their websocket: rounds, runs, live progress, metric series, models."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from training.models import GenerationJob, ModelArtifact, Round, RunMetric, TrainingRun
from training.realtime import run_payload

RUN_RELATIONS = ("round", "input_model", "output_model", "reward_model", "dataset", "launched_by")
# Metric points sent per poll at most; a page that reconnects after a long gap catches up in steps.
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


def metric_series(run: TrainingRun) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per metric kind (train, eval) and name, the (step, value) points in step order, numbers only."""
    series: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for kind, step, values in run.metric_points.order_by("step", "pk").values_list("kind", "step", "values"):
        for name, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
                series.setdefault(kind, {}).setdefault(name, []).append((step, float(value)))
    return series


def training_overview(*, limit: int = 50) -> dict[str, Any]:
    """Recent rounds (with their runs), runs launched alone, generation jobs, and the registry's size."""
    return {
        "rounds": Round.objects.select_related("base_model", "dataset").prefetch_related("runs")[:limit],
        "single_runs": TrainingRun.objects.filter(round=None).select_related(*RUN_RELATIONS)[:limit],
        "generation_jobs": GenerationJob.objects.select_related("model", "campaign")[:limit],
        "model_count": ModelArtifact.objects.count(),
    }


def round_for_page(round_id: int) -> tuple[Round, list[TrainingRun]]:
    rounds = Round.objects.select_related("base_model", "dataset", "launched_by")
    training_round = get_object_or_404(rounds, pk=round_id)
    return training_round, list(training_round.runs.select_related(*RUN_RELATIONS).order_by("position"))


def run_for_page(run_id: int) -> TrainingRun:
    return get_object_or_404(TrainingRun.objects.select_related(*RUN_RELATIONS), pk=run_id)


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
            if isinstance(value, int | float) and not isinstance(value, bool):
                counts[name] = counts.get(name, 0) + 1
    names = sorted(counts, key=lambda name: (-counts[name], name))[:max_rows]
    rows = [{"name": name, "values": [model.evaluation.get(name) for model in evaluated]} for name in names]
    return {"models": evaluated, "rows": rows}
