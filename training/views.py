"""Manager pages of training: rounds, runs with live progress, and the model registry."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from rlhf_platform.permissions import manager_required
from training import progress
from training.charts import metric_charts
from training.errors import TrainingError
from training.models import JobStatus, TrainingRun
from training.services.rounds import run_cancel, run_resume


@manager_required
def training_home(request: HttpRequest) -> HttpResponse:
    return render(request, "training/home.html", progress.training_overview())


@manager_required
def round_detail(request: HttpRequest, round_id: int) -> HttpResponse:
    training_round, runs = progress.round_for_page(round_id)
    return render(request, "training/round_detail.html", {"round": training_round, "runs": runs})


@manager_required
def round_live(request: HttpRequest, round_id: int) -> HttpResponse:
    training_round, runs = progress.round_for_page(round_id)
    return render(request, "training/_round_live.html", {"round": training_round, "runs": runs})


@manager_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = progress.run_for_page(run_id)
    context = _run_live_context(run)
    context["spec_json"] = json.dumps(run.spec, indent=2, sort_keys=True) if run.spec else "Built when the run starts."
    return render(request, "training/run_detail.html", context)


@manager_required
def run_live(request: HttpRequest, run_id: int) -> HttpResponse:
    """The parts of the run page that change as it trains (charts, checkpoints, log, actions)."""
    return render(request, "training/_run_live.html", _run_live_context(progress.run_for_page(run_id)))


def _run_live_context(run: TrainingRun) -> dict:
    series = progress.metric_series(run)
    return {
        "run": run,
        "charts": metric_charts(series),
        "has_eval": "eval" in series,
        "last_point_id": progress.last_point_id(run),
        "can_cancel": run.status in (JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RUNNING),
        "can_resume": run.status in (JobStatus.INTERRUPTED, JobStatus.CANCELLED, JobStatus.FAILED),
    }


@manager_required
def models_page(request: HttpRequest) -> HttpResponse:
    return render(request, "training/models.html", {"models": progress.models_with_lineage()})


@manager_required
@require_POST
def run_cancel_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = progress.run_for_page(run_id)
    try:
        run = run_cancel(run=run)
    except TrainingError as error:
        messages.error(request, error.message)
    else:
        if run.status == JobStatus.RUNNING:
            messages.info(request, "Stopping at the end of the current step; a checkpoint is kept.")
        else:
            messages.success(request, "Cancelled.")
    return redirect("training:run-detail", run_id=run.pk)


@manager_required
@require_POST
def run_resume_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = progress.run_for_page(run_id)
    try:
        run_resume(run=run)
    except TrainingError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Queued again; it continues from its last checkpoint.")
    return redirect("training:run-detail", run_id=run.pk)
