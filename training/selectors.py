"""Reads of the training app for pages and the API."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from training.models import GenerationJob, ModelArtifact, Round, RunMetric, TrainingRun

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
