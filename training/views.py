"""Manager pages of training: rounds, runs with live progress, and the model registry."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from rlhf_platform.errors import UserError
from rlhf_platform.pagination import list_page
from rlhf_platform.permissions import manager_required
from training import mistakes, selectors
from training.charts import chart_legend, metric_charts, overlaid_charts
from training.comparisons import table_csv, table_markdown, variant_table
from training.errors import TrainingError
from training.formatting import cost_lines, format_learning_rate
from training.forms import (
    ComparisonLaunchForm,
    EvaluationForm,
    GenerateForm,
    RoundLaunchForm,
    RunsCompareForm,
    SweepLaunchForm,
    engine_defaults,
)
from training.models import (
    FINAL_STATUSES,
    RESUMABLE_STATUSES,
    Comparison,
    GenerationJob,
    JobStatus,
    ModelArtifact,
    Round,
    Sweep,
    TrainingRun,
)
from training.services.comparisons import comparison_launch
from training.services.evaluation import benchmark_data_dir, default_benchmarks
from training.services.generation import GENERATION_FIELDS, generation_campaign_start, generation_job_create
from training.services.rounds import round_cancel, round_launch, round_launch_evaluation, run_cancel, run_resume
from training.services.sweeps import METRICS, sweep_cancel, sweep_launch, sweep_promote
from training.specs import run_learning_rate


@manager_required
def training_home(request: HttpRequest) -> HttpResponse:
    overview = selectors.training_overview()
    context = {
        "rounds": list_page(request, overview["rounds"], param="rounds"),
        "single_runs": list_page(request, overview["single_runs"], param="runs"),
        "generation_jobs": list_page(request, overview["generation_jobs"], param="jobs"),
        "model_count": overview["model_count"],
        "launch_url": reverse("training:round-launch"),
    }
    return render(request, "training/home.html", context)


@manager_required
def round_detail(request: HttpRequest, round_id: int) -> HttpResponse:
    training_round = selectors.round_get(round_id=round_id)
    context = {**_round_ab_context(training_round), **_round_context(training_round)}
    return render(request, "training/round_detail.html", context)


@manager_required
def round_live(request: HttpRequest, round_id: int) -> HttpResponse:
    return render(request, "training/_round_live.html", _round_context(selectors.round_get(round_id=round_id)))


def _round_context(training_round: Round) -> dict[str, Any]:
    return {
        "round": training_round,
        "runs": selectors.round_runs(round_=training_round),
        "verdict": selectors.round_verdict(round_=training_round),
        "verdict_model": selectors.round_evaluated_model(round_=training_round),
    }


@manager_required
def round_ab_live(request: HttpRequest, round_id: int) -> HttpResponse:
    """The round page's human A/B result (its new policy against its base), re-fetched as judgements arrive."""
    return render(request, "training/_round_ab.html", _round_ab_context(selectors.round_get(round_id=round_id)))


def _round_ab_context(training_round: Round) -> dict[str, Any]:
    new_policy = selectors.round_new_policy(round_=training_round)
    ab = None
    if new_policy is not None:
        ab = selectors.ab_result_for_models(new_model=new_policy, old_model=training_round.base_model)
    return {"round": training_round, "new_policy": new_policy, "ab": ab, "generate_url": reverse("training:generate")}


@manager_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(run_id=run_id)
    context = _run_live_context(run)
    context["spec_json"] = json.dumps(run.spec, indent=2, sort_keys=True) if run.spec else "Built when the run starts."
    learning_rate = run_learning_rate(stage=run.stage, settings=run.params, spec=run.spec)
    context["learning_rate"] = format_learning_rate(learning_rate) if learning_rate is not None else ""
    return render(request, "training/run_detail.html", context)


@manager_required
def run_live(request: HttpRequest, run_id: int) -> HttpResponse:
    """The parts of the run page that change as it trains (charts, checkpoints, log, actions)."""
    return render(request, "training/_run_live.html", _run_live_context(selectors.run_get(run_id=run_id)))


def _run_live_context(run: TrainingRun) -> dict:
    series = selectors.run_metric_series(run=run)
    return {
        "run": run,
        "charts": metric_charts(series),
        "has_eval": bool(series.get("eval")),
        "last_point_id": selectors.last_point_id(run),
        "can_cancel": run.status not in FINAL_STATUSES,
        "can_resume": run.status in RESUMABLE_STATUSES,
        "cost": cost_lines(run.final_metrics or {}),
    }


@manager_required
def models_page(request: HttpRequest) -> HttpResponse:
    models = list_page(request, selectors.models_with_lineage(), per_page=20)
    context = {
        "models": models,
        "comparison": selectors.evaluation_table(list(models)),
        "generate_url": reverse("training:generate"),
        "promoted": selectors.promoted_models(),
    }
    return render(request, "training/models.html", context)


@manager_required
@require_POST
def run_cancel_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(run_id=run_id)
    try:
        run = run_cancel(run=run, actor=request.user)
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
def round_cancel_page(request: HttpRequest, round_id: int) -> HttpResponse:
    training_round = selectors.round_get(round_id=round_id)
    try:
        round_cancel(round_=training_round, actor=request.user)
    except TrainingError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The round stops: a running stage at the end of its step, with a checkpoint.")
    return redirect("training:round-detail", round_id=training_round.pk)


@manager_required
@require_POST
def run_resume_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(run_id=run_id)
    try:
        run_resume(run=run, actor=request.user)
    except TrainingError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Queued again; it continues from its last checkpoint.")
    return redirect("training:run-detail", run_id=run.pk)


def _add_service_errors(form, error: TrainingError) -> None:
    """Put a service's field errors on the form's fields; the rest, and the message, on the form."""
    placed = False
    for field, text in error.errors.items():
        if field in form.fields:
            form.add_error(field, text)
            placed = True
    if not placed or error.message not in error.errors.values():
        form.add_error(None, error.message)


@manager_required
@require_http_methods(["GET", "POST"])
def round_launch_page(request: HttpRequest) -> HttpResponse:
    bound = request.method == "POST"
    form = RoundLaunchForm(
        request.POST if bound else None,
        request.FILES if bound else None,
        initial={
            "dataset": request.GET.get("dataset"),
            # A sweep's promoted best model is the one offered next.
            "base_model": selectors.newest_promoted_model(),
            "reward_model": selectors.newest_promoted_model(reward_model=True),
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            training_round = round_launch(launched_by=request.user, **form.launch_arguments())
        except TrainingError as error:
            _add_service_errors(form, error)
        else:
            messages.success(request, f"“{training_round.name}” is queued; the worker starts it.")
            return redirect("training:round-detail", round_id=training_round.pk)
    return render(request, "training/round_launch.html", {"form": form, "defaults": engine_defaults()})


@manager_required
@require_http_methods(["GET", "POST"])
def generate_page(request: HttpRequest) -> HttpResponse:
    initial = {
        "model": request.GET.get("model") or selectors.newest_promoted_model(),
        "compare_with": request.GET.get("compare_with"),
    }
    form = GenerateForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            job = generation_job_create(launched_by=request.user, **form.job_arguments())
        except TrainingError as error:
            _add_service_errors(form, error)
        else:
            messages.success(
                request, f"Generating candidates for “{job.campaign_name}”; the campaign appears when done."
            )
            return redirect("training:generation-job", job_id=job.pk)
    return render(request, "training/generate.html", {"form": form})


# --- generation jobs and models: the A/B review ---------------------------------------------------


@manager_required
def generation_job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = selectors.generation_job_get(job_id=job_id)
    return render(request, "training/generation_job.html", _generation_job_context(job))


@manager_required
def generation_job_live(request: HttpRequest, job_id: int) -> HttpResponse:
    """The parts of the job page that change: its progress, the A/B result, and the start form."""
    job = selectors.generation_job_get(job_id=job_id)
    return render(request, "training/_generation_job_live.html", _generation_job_context(job))


def _generation_job_context(job: GenerationJob) -> dict:
    return {
        "job": job,
        "ab": selectors.ab_result_for_job(job=job),
        "start": selectors.generation_campaign_start_plan(job=job),
        "settings": {k: v for k, v in job.params.items() if k in GENERATION_FIELDS},
    }


@manager_required
@require_POST
def generation_campaign_start_page(request: HttpRequest, job_id: int) -> HttpResponse:
    job = selectors.generation_job_get(job_id=job_id)
    try:
        campaign = generation_campaign_start(job=job, reviewers=request.POST.getlist("reviewers"), actor=request.user)
    except UserError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"“{campaign.name}” is active: its {campaign.reviewers.count()} reviewers can start.")
    return redirect("training:generation-job", job_id=job.pk)


@manager_required
def model_detail(request: HttpRequest, model_id: int) -> HttpResponse:
    model = selectors.model_get(model_id=model_id)
    context = {
        "model": model,
        "ancestors": selectors.model_ancestors(model=model),
        "derived": selectors.model_list().filter(base_model=model),
        "jobs": selectors.model_generation_jobs(model=model),
        "ab_results": selectors.ab_results_for_model(model=model),
        "generate_url": reverse("training:generate"),
        # The run's final metrics; its verdict has a section of its own.
        "training_metrics": [(name, value) for name, value in model.evaluation.items() if name != "verdict"],
        "promoted_by": selectors.promoted_models().get(model.pk),
    }
    return render(request, "training/model_detail.html", context)


@manager_required
@require_http_methods(["GET", "POST"])
def model_evaluate_page(request: HttpRequest, model_id: int) -> HttpResponse:
    """Evaluate a registered model, alone or against another one; the evaluation runs as a round."""
    model = selectors.model_get(model_id=model_id)
    available = default_benchmarks(benchmark_data_dir())
    bound = request.method == "POST"
    form = EvaluationForm(
        request.POST if bound else None,
        request.FILES if bound else None,
        model=model,
        available_benchmarks=available,
        initial={"compare_with": model.base_model_id or _trained_from(model), "dataset": model.dataset_id},
    )
    if request.method == "POST" and form.is_valid():
        try:
            training_round = round_launch_evaluation(launched_by=request.user, **form.evaluation_arguments())
        except TrainingError as error:
            _add_service_errors(form, error)
        else:
            messages.success(request, f"“{training_round.name}” is queued; the worker starts it.")
            return redirect("training:round-detail", round_id=training_round.pk)
    context = {"form": form, "model": model, "benchmark_data": bool(available)}
    return render(request, "training/model_evaluate.html", context)


def _trained_from(model: ModelArtifact) -> int | None:
    """The model a run trained this one from: the natural baseline of its evaluation."""
    run = model.produced_by
    return run.input_model_id if run is not None else None


@manager_required
def model_ab_live(request: HttpRequest, model_id: int) -> HttpResponse:
    """The model page's A/B results, re-fetched as judgements arrive."""
    model = selectors.model_get(model_id=model_id)
    context = {"model": model, "ab_results": selectors.ab_results_for_model(model=model)}
    return render(request, "training/_model_ab_results.html", context)


@manager_required
def model_mistakes_page(request: HttpRequest, model_id: int) -> HttpResponse:
    """The model's latest evaluation item by item: its slices worst first, and the items of one slice
    (``?dimension=&key=&value=``; all items without) that it got wrong, or for a policy lost."""
    model = selectors.model_get(model_id=model_id)
    found = selectors.model_mistakes(model=model)
    context: dict[str, Any] = {"model": model, "found": found, "min_flagged": mistakes.MIN_FLAGGED_COUNT}
    status = 200
    if found.report is not None:
        rows, chosen = found.table, None
        if "dimension" in request.GET:
            where = {name: request.GET.get(name, "") for name in ("dimension", "key", "value")}
            chosen = mistakes.find_slice(found.report, **where)
            if chosen is None:
                context["slice_error"] = "No held-out item is in that slice: choose one from the table."
                status = 404
            else:
                rows = mistakes.slice_rows(found.table, **where)
        context.update(chosen=chosen, misses=list_page(request, mistakes.misses(rows) if status == 200 else []))
    return render(request, "training/model_mistakes.html", context, status=status)


# --- comparisons and runs side by side --------------------------------------------------------------


@manager_required
@require_GET
def comparison_list_page(request: HttpRequest) -> HttpResponse:
    comparisons = list_page(request, selectors.comparison_list(), per_page=20)
    return render(request, "training/comparisons.html", {"comparisons": comparisons})


@manager_required
@require_http_methods(["GET", "POST"])
def comparison_launch_page(request: HttpRequest) -> HttpResponse:
    form = ComparisonLaunchForm(request.POST or None, initial={"dataset": request.GET.get("dataset")})
    if request.method == "POST" and form.is_valid():
        try:
            comparison = comparison_launch(launched_by=request.user, **form.launch_arguments())
        except TrainingError as error:
            # The service names the variants one field; the form has one per kind.
            variants_field = f"{form.cleaned_data['kind']}_variants".replace("adapters_", "adapter_")
            errors = {variants_field if k == "variants" else k: v for k, v in error.errors.items()}
            _add_service_errors(form, TrainingError(error.message, errors))
        else:
            messages.success(request, f"“{comparison.name}”: {len(comparison.variants)} rounds queued.")
            return redirect("training:comparison-detail", comparison_id=comparison.pk)
    return render(request, "training/comparison_launch.html", {"form": form})


@manager_required
@require_GET
def comparison_detail(request: HttpRequest, comparison_id: int) -> HttpResponse:
    """The comparison's table and curves; ``?format=csv`` or ``?format=md`` downloads the table."""
    comparison = selectors.comparison_get(comparison_id=comparison_id)
    download = request.GET.get("format", "")
    if download not in ("", "html", "csv", "md"):
        return HttpResponseBadRequest("Unknown format: use csv or md.", content_type="text/plain; charset=utf-8")
    context = _comparison_context(comparison)
    if download == "csv":
        return _download(table_csv(context["table"]), f"comparison-{comparison.pk}.csv", "text/csv")
    if download == "md":
        text = table_markdown(context["table"], title=comparison.name, facts=context["facts"])
        return _download(text, f"comparison-{comparison.pk}.md", "text/markdown")
    return render(request, "training/comparison_detail.html", context)


@manager_required
@require_GET
def comparison_live(request: HttpRequest, comparison_id: int) -> HttpResponse:
    """The parts of the comparison page that change while its variants train: re-fetched by the page."""
    comparison = selectors.comparison_get(comparison_id=comparison_id)
    return render(request, "training/_comparison_live.html", _comparison_context(comparison))


def _comparison_context(comparison: Comparison) -> dict[str, Any]:
    variants = selectors.comparison_variants(comparison=comparison)
    table = variant_table(variants)
    charts = overlaid_charts([(variant["variant"], variant["series"]) for variant in variants])
    run_ids = [variant["run_id"] for variant in variants if variant["run_id"]]
    return {
        "comparison": comparison,
        "facts": selectors.comparison_facts(comparison=comparison),
        "table": table,
        "charts": charts,
        "legend": chart_legend(
            [(variant["variant"], reverse("training:round-detail", args=[variant["round_id"]])) for variant in variants]
        ),
        "active": any(variant["status"] in (Round.Status.QUEUED, Round.Status.RUNNING) for variant in variants),
        "side_by_side_url": reverse("training:runs-compare") + "?" + urlencode([("run", pk) for pk in run_ids]),
    }


def _download(text: str, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(text, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@manager_required
@require_GET
def runs_compare_page(request: HttpRequest) -> HttpResponse:
    """Runs side by side (``?run=1&run=2``): their specs as one table, differing rows marked, and
    their curves on shared axes. ``differing=1`` shows only the rows that differ."""
    form = RunsCompareForm(request.GET)
    context: dict[str, Any] = {"form": form, "error": ""}
    if form.is_valid():
        try:
            runs = selectors.runs_side_by_side(run_ids=form.cleaned_data["run"])
        except TrainingError as error:
            context["error"] = error.message
        else:
            context.update(_runs_compare_context(runs, only_differing=form.cleaned_data["differing"]))
    else:
        context["error"] = " ".join(form.errors.get("run", [])) or "Pick runs to compare."
    return render(request, "training/runs_compare.html", context, status=400 if context["error"] else 200)


def _runs_compare_context(runs: list[TrainingRun], *, only_differing: bool) -> dict[str, Any]:
    labels = [_run_label(run) for run in runs]
    rows = selectors.runs_spec_rows(runs=runs)
    series = [selectors.run_metric_series(run=run) for run in runs]
    curves = [(label, {**by_kind["train"], **by_kind["eval"]}) for label, by_kind in zip(labels, series, strict=True)]
    return {
        "runs": runs,
        "columns": [{"run": run, "label": label} for run, label in zip(runs, labels, strict=True)],
        "rows": [row for row in rows if row["differs"]] if only_differing else rows,
        "differing_count": sum(1 for row in rows if row["differs"]),
        "only_differing": only_differing,
        "charts": overlaid_charts(curves),
        "legend": chart_legend(
            [(label, reverse("training:run-detail", args=[run.pk])) for label, run in zip(labels, runs, strict=True)]
        ),
        "all_url": "?" + urlencode([("run", run.pk) for run in runs]),
        "differing_url": "?" + urlencode([*(("run", run.pk) for run in runs), ("differing", "1")]),
    }


def _run_label(run: TrainingRun) -> str:
    """A run as a column and a legend name it: its variant, else its round's name (shortened)."""
    if run.round_id is None:
        return f"{run.stage} run {run.pk}"
    context = run.round.variant or (run.round.name if len(run.round.name) <= 40 else run.round.name[:39] + "…")
    return f"{run.stage} run {run.pk} · {context}"


def _run_label(run: TrainingRun) -> str:
    """A run as a column and a legend name it: its variant, else its round's name (shortened)."""
    if run.round_id is None:
        return f"{run.stage} run {run.pk}"
    context = run.round.variant or (run.round.name if len(run.round.name) <= 40 else run.round.name[:39] + "…")
    return f"{run.stage} run {run.pk} · {context}"


# --- sweeps --------------------------------------------------------------------------------------


@manager_required
def sweep_list_page(request: HttpRequest) -> HttpResponse:
    context = {"sweeps": list_page(request, selectors.sweep_list(), per_page=20)}
    return render(request, "training/sweeps.html", context)


@manager_required
@require_http_methods(["GET", "POST"])
def sweep_launch_page(request: HttpRequest) -> HttpResponse:
    initial = {
        "dataset": request.GET.get("dataset"),
        "base_model": request.GET.get("base_model") or selectors.newest_promoted_model(),
    }
    form = SweepLaunchForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            sweep = sweep_launch(launched_by=request.user, **form.launch_arguments())
        except TrainingError as error:
            _add_sweep_errors(form, error)
        else:
            messages.success(request, f"“{sweep.name}” is running; its first trials are queued.")
            return redirect("training:sweep-detail", sweep_id=sweep.pk)
    context = {"form": form, "metrics": [(m.name, m.label, m.direction, ", ".join(m.stages)) for m in METRICS.values()]}
    return render(request, "training/sweep_launch.html", context)


def _add_sweep_errors(form: SweepLaunchForm, error: TrainingError) -> None:
    """The service's field errors on the form's fields (a parameter's on its row); the rest on the form."""
    placed = False
    for key, text in error.errors.items():
        field = form.field_for_error(key)
        if field is not None:
            form.add_error(field, text)
            placed = True
    if not placed or error.message not in error.errors.values():
        form.add_error(None, error.message)


@manager_required
def sweep_detail(request: HttpRequest, sweep_id: int) -> HttpResponse:
    return render(request, "training/sweep_detail.html", _sweep_context(selectors.sweep_get(sweep_id=sweep_id)))


@manager_required
def sweep_live(request: HttpRequest, sweep_id: int) -> HttpResponse:
    """The parts of the sweep page that change as trials end (ranking, charts, actions)."""
    return render(request, "training/_sweep_live.html", _sweep_context(selectors.sweep_get(sweep_id=sweep_id)))


def _sweep_context(sweep: Sweep) -> dict[str, Any]:
    trials = selectors.sweep_trials(sweep=sweep)
    curves, legend = selectors.sweep_curves(sweep=sweep, trials=trials)
    best = next((trial for trial in trials if trial.pk == sweep.best_trial_id), None)
    return {
        "sweep": sweep,
        "trials": trials,
        "metric": METRICS.get(sweep.metric),
        "scatter_charts": selectors.sweep_scatter_charts(sweep=sweep, trials=trials),
        "curves": curves,
        "legend": legend,
        "best": best,
        "best_model": selectors.sweep_trial_model(trial=best) if best is not None else None,
        "can_cancel": sweep.status == Sweep.Status.RUNNING,
        "can_promote": sweep.status != Sweep.Status.RUNNING and best is not None,
    }


@manager_required
@require_POST
def sweep_cancel_page(request: HttpRequest, sweep_id: int) -> HttpResponse:
    sweep = selectors.sweep_get(sweep_id=sweep_id)
    try:
        sweep_cancel(sweep=sweep, actor=request.user)
    except TrainingError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Cancelled: no more trials; a running one stops at the end of its step.")
    return redirect("training:sweep-detail", sweep_id=sweep.pk)


@manager_required
@require_POST
def sweep_promote_page(request: HttpRequest, sweep_id: int) -> HttpResponse:
    sweep = selectors.sweep_get(sweep_id=sweep_id)
    try:
        sweep = sweep_promote(sweep=sweep, actor=request.user)
    except TrainingError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"{sweep.promoted_model.name} is promoted as the best of “{sweep.name}”: the models page marks it, "
            "and launch pages offer it first.",
        )
    return redirect("training:sweep-detail", sweep_id=sweep.pk)
