"""Reads of the training app for pages and the API."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Count, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone

from labeling import selectors as labeling_selectors
from labeling.aggregation import arena
from labeling.models import Campaign, CampaignStatus, Response, Task
from training import mistakes
from training.charts import chart_legend, overlaid_charts, scatter_chart
from training.comparisons import spec_table
from training.engine.stages import stage_names
from training.errors import TrainingError
from training.models import (
    Comparison,
    GenerationJob,
    JobStatus,
    ModelArtifact,
    Round,
    RunMetric,
    Stage,
    Sweep,
    TrainingRun,
    TrialState,
    WorkerPresence,
    is_metric_value,
)
from training.realtime import round_payload, run_payload

RUN_RELATED = ("round", "input_model", "reward_model", "output_model", "dataset", "launched_by")


def worker_seen_recently() -> bool:
    """Whether some ``manage.py worker`` beat within ``TRAINING_STALE_AFTER_S``: else queued work waits.

    A worker beats every ``TRAINING_HEARTBEAT_S`` and removes its row when it stops cleanly.
    """
    since = timezone.now() - dt.timedelta(seconds=settings.TRAINING_STALE_AFTER_S)
    return WorkerPresence.objects.filter(seen_at__gte=since).exists()


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


def round_new_policy(*, round_: Round) -> ModelArtifact | None:
    """The newest policy the round made: the output of its last succeeded stage that trains a policy."""
    run = (
        round_.runs.filter(stage__in=stage_names(makes="policy"), status=JobStatus.SUCCEEDED)
        .exclude(output_model=None)
        .select_related("output_model")
        .order_by("-position")
        .first()
    )
    return run.output_model if run is not None else None


def round_verdict(*, round_: Round) -> dict[str, Any] | None:
    """The report of the round's evaluate stage once it succeeded (figures, verdict, example answers)."""
    run = round_.runs.filter(stage=Stage.EVALUATE, status=JobStatus.SUCCEEDED).order_by("-position").first()
    return run.final_metrics.get("report") if run is not None else None


def round_evaluated_model(*, round_: Round) -> ModelArtifact | None:
    """The model the round's evaluate stage judged, once it succeeded (its mistakes page reads its outcomes)."""
    run = round_.runs.filter(stage=Stage.EVALUATE, status=JobStatus.SUCCEEDED).order_by("-position").first()
    return run.input_model if run is not None else None


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


def training_overview() -> dict[str, Any]:
    """Rounds (with their runs), runs launched alone and generation jobs, newest first; the registry's size."""
    return {
        "rounds": Round.objects.select_related("base_model", "dataset").prefetch_related(
            Prefetch("runs", queryset=TrainingRun.objects.order_by("position"))
        ),
        "single_runs": TrainingRun.objects.filter(round=None).select_related(*RUN_RELATED),
        "generation_jobs": GenerationJob.objects.select_related("model", "campaign"),
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


# --- A/B results ----------------------------------------------------------------------------------

AB_CONFIDENCE = 0.95


@dataclass(frozen=True)
class ABResult:
    """How a new model did against an old one in blind A/B reviews: its win rate, as reviews arrive.

    ``win_rate`` is the new model's, ties counting half, over ``n`` verdicts (wins, losses, ties);
    ``both_bad`` verdicts are counted apart and left out. ``low`` and ``high`` bound its 95% Wilson
    interval (``labeling.aggregation.arena.win_rate``); all three are None before the first verdict.
    ``campaigns`` are the A/B campaigns the judgements came from.
    """

    new_model: ModelArtifact
    old_model: ModelArtifact
    wins: int
    losses: int
    ties: int
    both_bad: int
    win_rate: float | None
    low: float | None
    high: float | None
    campaigns: tuple[Campaign, ...]

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def n_judgements(self) -> int:
        return self.n + self.both_bad

    @property
    def bar(self) -> dict[str, float] | None:
        """Where the rate and its interval sit on a 0-100% scale, for the pages' interval bar."""
        if self.win_rate is None:
            return None
        return {
            "point": round(100 * self.win_rate, 1),
            "left": round(100 * self.low, 1),
            "width": round(100 * (self.high - self.low), 1),
        }

    @property
    def verdict(self) -> str:
        """``better`` or ``worse`` when the interval excludes 0.5, ``no clear change`` otherwise."""
        if self.win_rate is None:
            return "no judgements yet"
        if self.low > 0.5:
            return "better"
        if self.high < 0.5:
            return "worse"
        return "no clear change"

    def as_dict(self) -> dict[str, Any]:
        """The JSON form for the API and live pages."""
        return {
            "new_model": {"id": self.new_model.pk, "name": self.new_model.name},
            "old_model": {"id": self.old_model.pk, "name": self.old_model.name},
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "both_bad": self.both_bad,
            "n": self.n,
            "n_judgements": self.n_judgements,
            "win_rate": self.win_rate,
            "low": self.low,
            "high": self.high,
            "confidence": AB_CONFIDENCE,
            "verdict": self.verdict,
            "campaigns": [{"id": c.pk, "slug": c.slug, "name": c.name, "status": c.status} for c in self.campaigns],
        }


def ab_result_for_job(*, job: GenerationJob) -> ABResult | None:
    """The new model's win rate against ``compare_with`` in the job's A/B campaign.

    None for a job without ``compare_with``; a result with no verdicts while the campaign does not
    exist yet or nobody has answered.
    """
    if job.compare_with_id is None:
        return None
    return _ab_result(new_model=job.model, old_model=job.compare_with, jobs=[job])


def ab_result_for_models(*, new_model: ModelArtifact, old_model: ModelArtifact) -> ABResult:
    """``new_model``'s win rate against ``old_model`` over every A/B campaign of generation jobs that
    paired the two (either one as ``compare_with``); what a round shows for its output against its base."""
    jobs = GenerationJob.objects.filter(
        Q(model=new_model, compare_with=old_model) | Q(model=old_model, compare_with=new_model)
    ).select_related("campaign")
    return _ab_result(new_model=new_model, old_model=old_model, jobs=list(jobs))


def ab_results_for_model(*, model: ModelArtifact) -> list[ABResult]:
    """The model's A/B results, one per model it was paired with, its newest pairings first.

    Each is told as the newest job of the pair ran it: the new model's win rate against the old.
    """
    jobs = (
        GenerationJob.objects.filter(Q(model=model) | Q(compare_with=model))
        .exclude(compare_with=None)
        .select_related("model", "compare_with")
        .order_by("-created_at")
    )
    results, seen = [], set()
    for job in jobs:
        # As the jobs paired them: the model is "new" against its predecessor, "old" against its successor.
        pair = frozenset((job.model_id, job.compare_with_id))
        if pair not in seen:
            seen.add(pair)
            results.append(ab_result_for_models(new_model=job.model, old_model=job.compare_with))
    return results


def _ab_result(*, new_model: ModelArtifact, old_model: ModelArtifact, jobs: list[GenerationJob]) -> ABResult:
    campaigns = tuple(job.campaign for job in jobs if job.campaign_id is not None)
    battles = labeling_selectors.comparisons(campaigns=campaigns)
    side = _sides(campaigns, new_model=new_model, old_model=old_model)
    battles = battles.assign(model_a=battles["response_a"].map(side), model_b=battles["response_b"].map(side))
    battles = battles[battles["model_a"].notna() & battles["model_b"].notna()]
    battles = battles[battles["model_a"] != battles["model_b"]]
    rate = arena.win_rate(battles, model="new", opponent="old", confidence=AB_CONFIDENCE)
    return ABResult(
        new_model=new_model,
        old_model=old_model,
        wins=rate.wins,
        losses=rate.losses,
        ties=rate.ties,
        both_bad=rate.both_bad,
        win_rate=rate.win_rate,
        low=rate.low,
        high=rate.high,
        campaigns=campaigns,
    )


def _sides(campaigns: tuple[Campaign, ...], *, new_model: ModelArtifact, old_model: ModelArtifact) -> dict[int, str]:
    """Per response of the campaigns, ``"new"`` or ``"old"``: by the ``model_id`` generation put in its
    meta, else by its model name (campaigns made before the id was recorded); others are left out."""
    by_id = {new_model.pk: "new", old_model.pk: "old"}
    by_name = {} if new_model.name == old_model.name else {new_model.name: "new", old_model.name: "old"}
    sides = {}
    responses = Response.objects.filter(task__campaign__in=campaigns, task__is_gold=False)
    for pk, model_name, meta in responses.values_list("pk", "model_name", "meta"):
        model_id = meta.get("model_id") if isinstance(meta, dict) else None
        side = by_id.get(model_id) if model_id is not None else by_name.get(model_name)
        if side is not None:
            sides[pk] = side
    return sides


# --- the generation job and model pages ------------------------------------------------------------


def model_ancestors(*, model: ModelArtifact, limit: int = 50) -> list[ModelArtifact]:
    """The models this one was trained from, its direct base first, then that model's base, and so on."""
    ancestors, seen, current = [], {model.pk}, model.base_model
    while current is not None and current.pk not in seen and len(ancestors) < limit:
        ancestors.append(current)
        seen.add(current.pk)
        current = current.base_model
    return ancestors


def model_generation_jobs(*, model: ModelArtifact) -> QuerySet[GenerationJob]:
    """Generation jobs in which the model answered prompts, as the new model or as the one compared with."""
    return generation_job_list().filter(Q(model=model) | Q(compare_with=model))


def generation_campaign_start_plan(*, job: GenerationJob) -> dict[str, Any] | None:
    """What ``generation_campaign_start`` would copy, for the job page's form; None when there is nothing to start.

    ``reviewers``: every active reviewer, ``in_pool`` when the source campaign's pool has them;
    ``gold_tasks``: the source's gold tasks that fit the new campaign's question.
    """
    campaign = job.campaign
    if campaign is None or campaign.status != CampaignStatus.DRAFT:
        return None
    source = job.source_campaign
    plan: dict[str, Any] = {
        "campaign": campaign,
        "source": source,
        "reviewers": labeling_selectors.reviewer_pool_choices(campaign=source or campaign),
        "gold_tasks": 0,
    }
    if source is not None:
        schema = campaign.schema
        counts = source.tasks.filter(is_gold=True).values_list("response_count", flat=True)
        plan["gold_tasks"] = sum(1 for count in counts if schema.check_response_count(count) is None)
    return plan


# --- a model's mistakes --------------------------------------------------------------------------

# Task ids per query when joining outcomes to their tasks: below SQLite's and PostgreSQL's limits
# on parameters per statement.
TASK_LOOKUP_BATCH = 5000


@dataclass(frozen=True)
class ModelMistakes:
    """What a model's latest evaluation got wrong, item by item (``training.mistakes``).

    ``kind``: ``reward`` (pairs, scored right or wrong) or ``policy`` (prompts, scored by whether it
    beat its base under the reward model). ``message`` says why there is nothing to show (never
    evaluated, an evaluation from before outcomes were kept, outcomes no longer on disk); then
    ``table`` and ``report`` are None.
    """

    kind: str
    run: TrainingRun | None
    message: str
    table: Any = None  # pandas DataFrame: training.mistakes.outcome_table
    report: mistakes.SliceReport | None = None


def model_mistakes(*, model: ModelArtifact) -> ModelMistakes:
    """The model's latest evaluation's outcomes, joined to their tasks' campaign and meta, and sliced."""
    verdict = model.evaluation.get("verdict")
    if not verdict:
        return ModelMistakes(
            kind="", run=None, message="This model has not been evaluated yet: evaluate it to see its mistakes."
        )
    kind = verdict.get("kind", "")
    run = TrainingRun.objects.filter(pk=verdict.get("run")).first()
    kept = verdict.get("outcomes")
    if kept is None or run is None:
        return ModelMistakes(
            kind=kind,
            run=run,
            message="Its latest evaluation kept only its figures, not each held-out item's outcome (it ran "
            "before outcomes were kept): evaluate it again to see its mistakes.",
        )
    if kind == "policy" and not kept.get("prompts"):
        return ModelMistakes(
            kind=kind,
            run=run,
            message="Its latest evaluation judged no answers against a base model under a reward model (it "
            "needs both, and held-out prompts), so there are no lost prompts to show.",
        )
    path = Path((run.spec or {}).get("output_dir", "")) / kept["file"]
    if not run.spec.get("output_dir") or not path.is_file():
        return ModelMistakes(
            kind=kind,
            run=run,
            message=f"The outcomes of its latest evaluation (run {run.pk}) are no longer on disk: evaluate it again.",
        )
    wanted = "pair" if kind == "reward" else "prompt"
    with path.open(encoding="utf-8") as lines:
        outcomes = [row for row in map(json.loads, lines) if row.get("kind") == wanted]
    table = mistakes.outcome_table(outcomes, _outcome_tasks(outcomes))
    return ModelMistakes(kind=kind, run=run, message="", table=table, report=mistakes.error_slices(table))


def _outcome_tasks(outcomes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Task id (as the held-out file wrote it) -> its campaign and meta, for the tasks that still exist."""
    ids = sorted({int(task_id) for row in outcomes if str(task_id := row.get("task_id") or "").isdigit()})
    tasks: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), TASK_LOOKUP_BATCH):
        rows = Task.objects.filter(pk__in=ids[start : start + TASK_LOOKUP_BATCH]).values_list(
            "pk", "campaign_id", "campaign__name", "meta"
        )
        for pk, campaign_id, campaign, meta in rows:
            tasks[str(pk)] = {"campaign_id": campaign_id, "campaign": campaign, "meta": meta}
    return tasks


# --- comparisons and runs side by side --------------------------------------------------------------

# Runs a side-by-side page shows at most: one chart colour each (``training.charts.SERIES_COLOURS``).
MAX_SIDE_BY_SIDE = 8


def comparison_list() -> QuerySet[Comparison]:
    return Comparison.objects.select_related("base_model", "dataset", "reward_model", "launched_by").prefetch_related(
        Prefetch("rounds", queryset=Round.objects.only("pk", "status", "variant", "comparison_id"))
    )


def comparison_get(*, comparison_id: int) -> Comparison:
    return get_object_or_404(comparison_list(), pk=comparison_id)


def comparison_variants(*, comparison: Comparison) -> list[dict[str, Any]]:
    """Per variant, in the order launched: its round, training run, evaluate run, their figures and
    the training run's metric series (``{name: [[step, value]]}``, training and held-out points)."""
    rounds = comparison.rounds.prefetch_related(
        Prefetch("runs", queryset=TrainingRun.objects.order_by("position"))
    ).order_by("pk")
    order = {variant: index for index, variant in enumerate(comparison.variants)}
    variants = []
    for round_ in sorted(rounds, key=lambda r: (order.get(r.variant, len(order)), r.pk)):
        runs = list(round_.runs.all())
        training = next((run for run in runs if run.stage != Stage.EVALUATE), None)
        evaluate = next((run for run in runs if run.stage == Stage.EVALUATE), None)
        series = run_metric_series(run=training) if training is not None else {}
        variants.append(
            {
                "variant": round_.variant,
                "status": round_.status,
                "round": round_,
                "round_id": round_.pk,
                "run": training,
                "run_id": training.pk if training is not None else "",
                "evaluate_run": evaluate,
                "metrics": training.final_metrics if training is not None else {},
                "report": (
                    evaluate.final_metrics.get("report")
                    if evaluate and evaluate.status == JobStatus.SUCCEEDED
                    else None
                ),
                "series": {**series.get("train", {}), **series.get("eval", {})},
            }
        )
    return variants


def runs_side_by_side(*, run_ids: list[int]) -> list[TrainingRun]:
    """The runs, in the order asked; raises ``TrainingError`` (a 400 with the field ``run``) for a
    list that is too short or too long, or an id that names no run."""
    run_ids = list(dict.fromkeys(run_ids))
    if not 2 <= len(run_ids) <= MAX_SIDE_BY_SIDE:
        raise TrainingError(
            f"Pick 2 to {MAX_SIDE_BY_SIDE} runs to compare; {len(run_ids)} picked.",
            {"run": f"Pick 2 to {MAX_SIDE_BY_SIDE} runs."},
        )
    found = run_list().in_bulk(run_ids)
    missing = [run_id for run_id in run_ids if run_id not in found]
    if missing:
        raise TrainingError(f"There is no run {missing[0]}.", {"run": f"No run {missing[0]}."})
    return [found[run_id] for run_id in run_ids]


def run_side_by_side_facts(run: TrainingRun) -> dict[str, str]:
    """What the side-by-side table shows of a run before its spec: where it came from and how it went."""
    return {
        "stage": run.stage,
        "status": run.status,
        "round": run.round.name if run.round_id else "—",
        "variant": run.round.variant if run.round_id and run.round.variant else "—",
        "snapshot": run.dataset.name if run.dataset_id else "—",
        "input model": run.input_model.name if run.input_model_id else "—",
    }


def comparison_facts(*, comparison: Comparison) -> list[str]:
    """What every variant shares, in sentences: for the page's header and the Markdown report."""
    what = (
        f"Adapter methods of {comparison.stage}"
        if comparison.kind == Comparison.Kind.ADAPTERS
        else f"Alignment methods with {comparison.adapter}"
    )
    budget = f"{comparison.max_steps} steps" if comparison.max_steps else f"{comparison.epochs:g} epochs"
    facts = [
        f"{what}: {', '.join(comparison.variants)}",
        f"Base model: {comparison.base_model.name}",
        f"Snapshot: {comparison.dataset.name}",
        f"Seed {comparison.seed}, budget {budget} per variant",
    ]
    if comparison.reward_model_id:
        facts.append(f"Reward model: {comparison.reward_model.name}")
    shared = (comparison.stage_settings or {}).get("shared") or {}
    if shared:
        facts.append("Shared settings: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(shared.items())))
    return facts


def runs_spec_rows(*, runs: list[TrainingRun]) -> list[dict[str, Any]]:
    """The runs' specs side by side (``training.comparisons.spec_table``). A run that has not started
    has no spec yet: its launch settings stand in for it."""
    facts = [run_side_by_side_facts(run) for run in runs]
    return spec_table(facts, [run.spec or {"settings": run.params} for run in runs])


# --- sweeps --------------------------------------------------------------------------------------

# Trials whose training curves the sweep page overlays: the best ranked (two passes of the palette).
SWEEP_CURVES_LIMIT = 16
# The training-time curves the sweep page overlays, in this order.
SWEEP_CURVE_NAMES = ["loss", "eval_loss", "learning_rate", "grad_norm"]


def sweep_list() -> QuerySet[Sweep]:
    # Ordered here: a query with an aggregate leaves the model's default ordering out.
    sweeps = Sweep.objects.select_related("base_model", "dataset", "best_trial", "promoted_model")
    return sweeps.annotate(trial_count=Count("trials")).order_by("-created_at", "-id")


def sweep_get(*, sweep_id: int) -> Sweep:
    return get_object_or_404(sweep_list(), pk=sweep_id)


def sweep_trials(*, sweep: Sweep) -> list[Round]:
    """The sweep's trials ranked: completed ones by their value (best first), then the running, pruned
    and failed ones by number. Each has ``trained_run`` (its stage's run) and ``rank`` (None unless complete)."""
    trials = list(
        sweep.trials.prefetch_related(
            Prefetch("runs", queryset=TrainingRun.objects.filter(stage=sweep.stage), to_attr="trained_runs")
        )
    )
    sign = 1 if sweep.direction == Sweep.Direction.MINIMIZE else -1
    order = {TrialState.COMPLETE: 0, TrialState.RUNNING: 1, TrialState.PRUNED: 2, TrialState.FAILED: 3}

    def key(trial: Round) -> tuple:
        value = trial.trial_value if trial.trial_state == TrialState.COMPLETE and trial.trial_value is not None else 0
        return (order.get(trial.trial_state, 4), sign * value, trial.trial_number)

    trials.sort(key=key)
    for rank, trial in enumerate(trials, start=1):
        trial.trained_run = trial.trained_runs[0] if trial.trained_runs else None
        trial.rank = rank if trial.trial_state == TrialState.COMPLETE else None
    return trials


def sweep_trial_model(*, trial: Round) -> ModelArtifact | None:
    """The model a trial trained (its stage's output), once it has one."""
    run = getattr(trial, "trained_run", None)
    return run.output_model if run is not None else None


def sweep_scatter_charts(*, sweep: Sweep, trials: list[Round]) -> list[dict[str, Any]]:
    """One chart per searched parameter: the metric of each completed trial against its value, the best
    highlighted, on a log axis where the range is searched on one. Categorical parameters are left out."""
    charts = []
    for row in sweep.search_space:
        if row["type"] == "categorical":
            continue
        points = [
            {
                "x": trial.trial_params.get(row["name"]),
                "y": trial.trial_value,
                "label": f"trial {trial.trial_number}",
                "highlight": trial.pk == sweep.best_trial_id,
            }
            for trial in trials
            if trial.trial_state == TrialState.COMPLETE
        ]
        chart = scatter_chart(row["name"], sweep.metric, points, log_x=row["log"])
        if chart is not None:
            charts.append(chart)
    return charts


def sweep_curves(*, sweep: Sweep, trials: list[Round]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The training curves of the best-ranked trials on shared axes, and their legend."""
    shown = [trial for trial in trials if trial.trained_run is not None][:SWEEP_CURVES_LIMIT]
    points = RunMetric.objects.filter(run__in=[trial.trained_run for trial in shown]).order_by("step", "id")
    by_run: dict[int, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for run_id, step, values in points.values_list("run_id", "step", "values"):
        for name, value in values.items():
            if name in SWEEP_CURVE_NAMES and is_metric_value(value):
                by_run[run_id][name].append((step, value))
    labels = [f"trial {trial.trial_number}" for trial in shown]
    runs = [(label, dict(by_run[trial.trained_run.pk])) for label, trial in zip(labels, shown, strict=True)]
    charts = overlaid_charts(runs, names=SWEEP_CURVE_NAMES)
    legend = chart_legend(
        [
            (
                f"{label} ({trial.get_trial_state_display().lower()})",
                reverse("training:round-detail", kwargs={"round_id": trial.pk}),
            )
            for label, trial in zip(labels, shown, strict=True)
        ]
    )
    return charts, legend


def promoted_models() -> dict[int, Sweep]:
    """Models promoted as the best of a sweep, by model id (the newest promotion if several)."""
    promoted = Sweep.objects.filter(promoted_model__isnull=False).order_by("promoted_at")
    return {sweep.promoted_model_id: sweep for sweep in promoted}


def newest_promoted_model(*, reward_model: bool = False) -> ModelArtifact | None:
    """The policy (or reward model) most recently promoted from a sweep: what launch pages offer first.

    A policy is any model that is not a reward model: a LoRA or bottleneck trial's output is an adapter.
    """
    promoted = Sweep.objects.filter(promoted_model__isnull=False)
    if reward_model:
        promoted = promoted.filter(promoted_model__kind=ModelArtifact.Kind.REWARD_MODEL)
    else:
        promoted = promoted.exclude(promoted_model__kind=ModelArtifact.Kind.REWARD_MODEL)
    sweep = promoted.select_related("promoted_model").order_by("-promoted_at").first()
    return sweep.promoted_model if sweep is not None else None
