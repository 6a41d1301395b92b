"""Hyperparameter sweeps with Optuna: trials are single-stage rounds in the queue.

The database is the source of truth. A sweep keeps no Optuna storage: each time it needs a new
trial (``_ask``) or a pruning decision (``sweep_trial_report``) it rebuilds an in-memory study
from its trial rows (``optuna.trial.create_trial`` + ``study.add_trial``) and asks it
(``study.ask(distributions)``), or asks its pruner. A trial is asked for with the sweep's row
locked (``select_for_update``; SQLite's write transactions are serialized whole), so two processes
(two workers ending trials at once, a worker and a page) never ask for the same trial number; the
unique (sweep, trial_number) constraint backs that up.

Determinism: the sampler is TPE, seeded per trial from the sweep's seed and the trial's number
(``_sampler``). A fresh sampler with the sweep's seed alone would draw the same first random point
at every rebuild; with the number mixed in, the same history always asks the same parameters, and
each trial gets its own draw. TPE samples at random for its first ``startup_trials(n)`` trials
(half the sweep, between 2 and 10), then models the finished ones; running trials count as
"liars" (``constant_liar``) so trials queued together spread out.

Life of a sweep: ``sweep_launch`` checks everything and queues the first ``parallel`` trials;
when a trial's round ends (``round_advance``/``round_stop`` call ``sweep_trial_ended``), its
value is read (the evaluate stage's figure, or the training stage's final metric), and the next
trial is queued, until ``n_trials`` were asked; then the sweep is finished with its best trial.
A failed or cancelled trial counts as failed (Optuna FAIL); one stopped by the pruner as PRUNED.

Pruning: the worker stores each metric event of a trial's training run; ``run_record_event``
passes the value of the sweep's ``prune_on`` curve (the training ``loss`` at each logging step, or
``eval_loss`` at each ``eval_steps``) to ``sweep_trial_report``, which asks Optuna's median pruner
against the completed trials' curves and cancels the run when the trial is worse.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labeling.models import PreferenceDataset
from rlhf_platform.audit import Action, audit_record
from training.engine.spec import AdapterSpec
from training.engine.stages import STAGES
from training.errors import Conflict, TrainingError
from training.models import (
    ACTIVE_STATUSES,
    JobStatus,
    ModelArtifact,
    Round,
    RunMetric,
    Stage,
    Sweep,
    TrainingRun,
    TrialState,
    is_metric_value,
)
from training.services.rounds import round_cancel, round_launch, run_cancel
from training.specs import STAGE_SETTING_FIELDS, WIRING_FIELDS, LaunchError, build_spec, check_spec, settings_for

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

logger = logging.getLogger(__name__)


@functools.cache
def _optuna() -> ModuleType:
    """Optuna, imported when a sweep first asks or prunes: every process that imports the services
    (the web server, each command) would otherwise pay its import at start-up."""
    import optuna

    # Optuna logs every ask and tell at INFO; the pages show what matters.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


MAX_TRIALS = 200
MAX_PARAMETERS = 8
MAX_CHOICES = 20
# Curves the pruner can read while a trial trains: (event kind, metric name). Both are losses.
PRUNE_ON = {"loss": RunMetric.Kind.TRAIN, "eval_loss": RunMetric.Kind.EVAL}
# The median pruner decides once this many trials completed (Optuna's default is 5, too many for
# the short sweeps people run on one machine).
PRUNER_STARTUP_TRIALS = 2
PARAMETER_TYPES = ("float", "int", "categorical")


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    direction: str  # minimize or maximize
    source: str  # "evaluate": the evaluate stage's figure; "train": the training stage's final metric
    stages: tuple[str, ...]  # the stages whose trials report it


POLICY_STAGES = ("sft", "dpo", "ppo")
# What a trial's score can be: the evaluate stage's figures (training.engine.stages.evaluate) and
# the training stage's own final losses.
METRICS = {
    metric.name: metric
    for metric in (
        Metric("preference_accuracy", "Agreement with held-out preferences", "maximize", "evaluate", POLICY_STAGES),
        Metric("logprob_margin", "Log-probability margin, chosen over rejected", "maximize", "evaluate", POLICY_STAGES),
        Metric("perplexity", "Perplexity on held-out text", "minimize", "evaluate", POLICY_STAGES),
        Metric("mean_reward", "Mean reward of the answers", "maximize", "evaluate", POLICY_STAGES),
        Metric("win_rate", "Win rate against the base model", "maximize", "evaluate", POLICY_STAGES),
        Metric("pairwise_accuracy", "Reward model accuracy on held-out pairs", "maximize", "evaluate", ("reward",)),
        Metric("eval_loss", "Held-out loss at the end of training", "minimize", "train", (*POLICY_STAGES, "reward")),
        Metric("train_loss", "Training loss (mean over the run)", "minimize", "train", (*POLICY_STAGES, "reward")),
    )
}
# The stages a sweep can tune: those trained on a dataset snapshot's rows.
SWEEP_STAGES = tuple(name for name in Stage.values if STAGES[name].reads_snapshot)
# The launch form's default search space, per parameter, by spec field.
DEFAULT_RANGES = {
    "learning_rate": {"type": "float", "low": 1e-6, "high": 1e-3, "log": True},
    "beta": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
    "adapter.r": {"type": "int", "low": 4, "high": 64, "log": True},
    "adapter.alpha": {"type": "int", "low": 8, "high": 128, "log": True},
    "epochs": {"type": "float", "low": 1.0, "high": 3.0, "log": False},
    "max_steps": {"type": "int", "low": 50, "high": 500, "log": False},
}


def metrics_for(stage: str) -> list[Metric]:
    """The metrics a trial of ``stage`` reports, for the launch form's list."""
    return [metric for metric in METRICS.values() if stage in metric.stages]


def startup_trials(n_trials: int) -> int:
    """Trials TPE samples at random before it models the finished ones."""
    return min(10, max(2, n_trials // 2))


# --- launch --------------------------------------------------------------------------------------


def sweep_launch(
    *,
    stage: str,
    dataset: PreferenceDataset | None,
    base_model: ModelArtifact,
    search_space: list[dict[str, Any]],
    n_trials: int,
    metric: str,
    launched_by: AbstractBaseUser | None,
    name: str = "",
    reward_model: ModelArtifact | None = None,
    parallel: int = 1,
    direction: str | None = None,
    pruner: str = Sweep.Pruner.NONE,
    prune_on: str = "loss",
    seed: int = 0,
    settings: dict[str, Any] | None = None,
    stage_settings: dict[str, dict[str, Any]] | None = None,
) -> Sweep:
    """Check a sweep and queue its first ``parallel`` trials.

    ``direction`` defaults to the metric's (minimize a loss, maximize an accuracy). ``settings``
    and ``stage_settings`` are every trial's fixed settings, as a round takes them; the searched
    parameters override them in the stage's own settings. Raises ``TrainingError`` with field
    errors (``search_space.<row>.<key>`` for a parameter), writing nothing.
    """
    settings, stage_settings = settings or {}, copy.deepcopy(stage_settings or {})
    if stage not in SWEEP_STAGES:
        raise TrainingError("Choose the stage to tune.", {"stage": f"One of {', '.join(SWEEP_STAGES)}."})
    if dataset is None:
        raise TrainingError("A sweep trains on a dataset snapshot.", {"dataset": "This field is required."})
    metric_row = METRICS.get(metric)
    if metric_row is None or stage not in metric_row.stages:
        names = ", ".join(m.name for m in metrics_for(stage))
        raise TrainingError(f"{metric!r} is not a figure a {stage} trial reports.", {"metric": f"One of {names}."})
    _skip_benchmarks_unless_asked(settings, stage_settings)
    direction = direction or metric_row.direction
    if direction not in Sweep.Direction.values:
        raise TrainingError("Minimize or maximize?", {"direction": "One of minimize, maximize."})
    if not isinstance(n_trials, int) or not 1 <= n_trials <= MAX_TRIALS:
        raise TrainingError(f"Run 1 to {MAX_TRIALS} trials.", {"n_trials": f"Between 1 and {MAX_TRIALS}."})
    if not isinstance(parallel, int) or not 1 <= parallel <= n_trials:
        raise TrainingError(
            "Trials at once: at least 1, at most the number of trials.", {"parallel": f"Between 1 and {n_trials}."}
        )
    if pruner not in Sweep.Pruner.values:
        raise TrainingError("Unknown pruner.", {"pruner": f"One of {', '.join(Sweep.Pruner.values)}."})
    if prune_on not in PRUNE_ON:
        raise TrainingError("The pruner reads a loss curve.", {"prune_on": f"One of {', '.join(PRUNE_ON)}."})
    if pruner != Sweep.Pruner.NONE and prune_on == "eval_loss" and not _eval_steps(stage, settings, stage_settings):
        raise TrainingError(
            "eval_loss is measured at the end of training unless advanced.eval_steps is set: set it, or prune "
            "on the training loss.",
            {"prune_on": "Needs advanced.eval_steps, or choose loss."},
        )
    space = search_space_check(stage=stage, search_space=search_space, settings=settings, stage_settings=stage_settings)
    with transaction.atomic():
        sweep = Sweep.objects.create(
            name=(name or "").strip()[:200] or f"{stage} sweep on {base_model.name}"[:200],
            stage=stage,
            dataset=dataset,
            base_model=base_model,
            reward_model=reward_model,
            search_space=space,
            fixed_settings={"shared": settings, "stages": stage_settings},
            n_trials=n_trials,
            parallel=parallel,
            metric=metric,
            direction=direction,
            pruner=pruner,
            prune_on=prune_on,
            seed=seed,
            launched_by=launched_by,
        )
        audit_record(
            actor=launched_by,
            action=Action.SWEEP_LAUNCH,
            target=sweep,
            stage=stage,
            n_trials=n_trials,
            metric=metric,
            parameters=[row["name"] for row in space],
        )
        # The first trials' launch checks (snapshot, models, specs) are the sweep's: a refusal
        # rolls the sweep back with it.
        for _ in range(parallel):
            _launch_trial(Sweep.objects.select_for_update().get(pk=sweep.pk))
    return sweep


def _skip_benchmarks_unless_asked(settings: dict[str, Any], stage_settings: dict[str, dict[str, Any]]) -> None:
    """Trials' evaluations leave lm-eval benchmarks out unless the settings name some: a sweep ranks
    its trials by one figure, and the benchmarks cost minutes per trial on a CPU (a round runs them
    by default)."""
    shared = settings.get("advanced") if isinstance(settings.get("advanced"), dict) else {}
    evaluate = stage_settings.get(Stage.EVALUATE)
    if "benchmarks" in shared or not isinstance(evaluate if evaluate is not None else {}, dict):
        return
    advanced = stage_settings.setdefault(Stage.EVALUATE, {}).setdefault("advanced", {})
    if isinstance(advanced, dict):
        advanced.setdefault("benchmarks", [])


def _eval_steps(stage: str, settings: dict[str, Any], stage_settings: dict[str, dict[str, Any]]) -> bool:
    return bool(settings_for(stage, settings, stage_settings)["advanced"].get("eval_steps"))


def search_space_check(
    *,
    stage: str,
    search_space: Any,
    settings: dict[str, Any] | None = None,
    stage_settings: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The search space, normalized (``{name, type, low, high, log}`` or ``{name, type, choices}``),
    after checking each row: a spec field of the stage, a sound range, and bounds the engine accepts
    in the stage's spec. Raises ``TrainingError`` naming ``search_space.<row>.<key>``."""
    settings, stage_settings = settings or {}, stage_settings or {}
    if not isinstance(search_space, list) or not search_space:
        raise TrainingError("Name at least one parameter to search.", {"search_space": "At least one parameter."})
    if len(search_space) > MAX_PARAMETERS:
        raise TrainingError(
            f"Search at most {MAX_PARAMETERS} parameters at once.", {"search_space": f"At most {MAX_PARAMETERS}."}
        )
    try:
        _check_trial_spec(stage, settings, stage_settings, {})
    except LaunchError as error:
        raise TrainingError(f"The fixed settings: {error.message}", {"settings": error.message}) from None
    space, seen = [], set()
    for index, row in enumerate(search_space):
        parameter = _check_row(stage, index, row)
        if parameter["name"] in seen:
            _refuse(index, "name", f"{parameter['name']} is searched twice.")
        seen.add(parameter["name"])
        if parameter["type"] == "categorical":
            bounds = [("choices", choice) for choice in parameter["choices"]]
        else:
            bounds = [("low", parameter["low"]), ("high", parameter["high"])]
        for key, value in bounds:
            try:
                _check_trial_spec(stage, settings, stage_settings, {parameter["name"]: value})
            except LaunchError as error:
                _refuse(index, key, f"{parameter['name']} = {value!r}: {error.message}")
        space.append(parameter)
    return space


def _refuse(index: int, key: str, message: str) -> None:
    raise TrainingError(f"Parameter {index + 1}: {message}", {f"search_space.{index}.{key}": message})


def _check_row(stage: str, index: int, row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        _refuse(index, "name", "Each parameter is an object: {name, type, low, high, log} or {name, type, choices}.")
    name = row.get("name")
    if not isinstance(name, str) or not _is_spec_field(stage, name):
        _refuse(index, "name", f"{name!r} is not a setting of the {stage} stage (e.g. {', '.join(_examples(stage))}).")
    kind = row.get("type") or "float"
    if kind not in PARAMETER_TYPES:
        _refuse(index, "type", f"One of {', '.join(PARAMETER_TYPES)}.")
    if kind == "categorical":
        choices = row.get("choices")
        if not isinstance(choices, list) or not 1 <= len(choices) <= MAX_CHOICES:
            _refuse(index, "choices", f"Give 1 to {MAX_CHOICES} choices.")
        if any(not isinstance(choice, str | int | float | bool) for choice in choices):
            _refuse(index, "choices", "Choices are strings, numbers or booleans.")
        if len({repr(choice) for choice in choices}) != len(choices):
            _refuse(index, "choices", "A choice is listed twice.")
        return {"name": name, "type": kind, "choices": choices}
    low, high, log = row.get("low"), row.get("high"), row.get("log", False)
    for key, value in (("low", low), ("high", high)):
        if kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
            _refuse(index, key, "A whole number is required.")
        if not is_metric_value(value):
            _refuse(index, key, "A number is required.")
    if not isinstance(log, bool):
        _refuse(index, "log", "true or false.")
    if not low < high:
        _refuse(index, "high", f"high ({high:g}) must be above low ({low:g}).")
    if log and low <= 0:
        _refuse(index, "low", f"On a log scale low must be > 0, not {low:g}.")
    if kind == "float":
        low, high = float(low), float(high)
    return {"name": name, "type": kind, "low": low, "high": high, "log": log}


def _is_spec_field(stage: str, name: str) -> bool:
    if name.startswith("adapter."):
        return name.split(".", 1)[1] in AdapterSpec.__dataclass_fields__
    return name != "adapter" and name not in WIRING_FIELDS and STAGES[stage].has_field(name)


def _examples(stage: str) -> list[str]:
    return [name for name in DEFAULT_RANGES if _is_spec_field(stage, name)]


def _check_trial_spec(
    stage: str, settings: dict[str, Any], stage_settings: dict[str, dict[str, Any]], params: dict[str, Any]
) -> None:
    """The stage's spec with these parameters passes the engine's field checks (no file is read)."""
    own = trial_stage_settings(stage=stage, settings=settings, stage_settings=stage_settings, params=params)
    wiring = {"dataset": "(snapshot rows)"}
    if STAGES[stage].needs_reward_model:
        wiring["reward_model"] = "(reward model)"
    spec = build_spec(
        stage=stage,
        settings=settings_for(stage, settings, own),
        model="(model)",
        output_dir="(output)",
        wiring=wiring,
    )
    check_spec(spec, field="search_space")


def trial_stage_settings(
    *, stage: str, settings: dict[str, Any], stage_settings: dict[str, dict[str, Any]], params: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """A trial's per-stage settings: the sweep's fixed ones with the trial's parameters set in the
    trained stage's own (a launch setting by its name, any other spec field under ``advanced``)."""
    stages = copy.deepcopy(stage_settings)
    own = stages.setdefault(stage, {})
    advanced = dict(own.get("advanced") or {})
    for name, value in params.items():
        if name.startswith("adapter."):
            shared_adapter = (settings.get("advanced") or {}).get("adapter") or {}
            advanced["adapter"] = {**shared_adapter, **(advanced.get("adapter") or {}), name.split(".", 1)[1]: value}
        elif name in STAGE_SETTING_FIELDS and name != "adapter":
            own[name] = value
        else:
            advanced[name] = value
    own["advanced"] = advanced
    return stages


# --- the study, rebuilt from the rows ------------------------------------------------------------


def _distributions(sweep: Sweep) -> dict[str, BaseDistribution]:
    distributions: dict[str, BaseDistribution] = {}
    optuna = _optuna()
    for row in sweep.search_space:
        if row["type"] == "categorical":
            distributions[row["name"]] = optuna.distributions.CategoricalDistribution(row["choices"])
        elif row["type"] == "int":
            distributions[row["name"]] = optuna.distributions.IntDistribution(row["low"], row["high"], log=row["log"])
        else:
            distributions[row["name"]] = optuna.distributions.FloatDistribution(row["low"], row["high"], log=row["log"])
    return distributions


def _sampler(sweep: Sweep, number: int) -> optuna.samplers.TPESampler:
    """TPE seeded from the sweep's seed and the trial's number (see the module's docstring)."""
    return _optuna().samplers.TPESampler(
        seed=(sweep.seed * 1_000_003 + number) % 2**32,
        n_startup_trials=startup_trials(sweep.n_trials),
        constant_liar=True,
    )


def _study(sweep: Sweep, trials: list[Round], number: int) -> optuna.Study:
    """Optuna's study as the rows say it is: every earlier trial, in number order."""
    distributions = _distributions(sweep)
    optuna = _optuna()
    study = optuna.create_study(direction=sweep.direction, sampler=_sampler(sweep, number))
    curves = _curves(sweep, [trial for trial in trials if trial.trial_state == TrialState.PRUNED])
    for trial in sorted(trials, key=lambda trial: trial.trial_number):
        params = {name: value for name, value in trial.trial_params.items() if name in distributions}
        if set(params) != set(distributions):
            continue  # cannot happen while search spaces are fixed at launch; never feed Optuna a partial trial
        state = {
            TrialState.COMPLETE: optuna.trial.TrialState.COMPLETE,
            TrialState.PRUNED: optuna.trial.TrialState.PRUNED,
            TrialState.FAILED: optuna.trial.TrialState.FAIL,
        }.get(trial.trial_state, optuna.trial.TrialState.RUNNING)
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=trial.trial_value if state == optuna.trial.TrialState.COMPLETE else None,
                params=params,
                distributions={name: distributions[name] for name in params},
                intermediate_values=curves.get(trial.pk, {}),
            )
        )
    return study


def _ask(sweep: Sweep) -> tuple[int, dict[str, Any]]:
    """The next trial's number and parameters. Call it with the sweep's row locked."""
    trials = list(sweep.trials.all())
    number = max((trial.trial_number for trial in trials), default=-1) + 1
    trial = _study(sweep, trials, number).ask(_distributions(sweep))
    return number, trial.params


def _launch_trial(sweep: Sweep) -> Round:
    """Ask for the next trial and queue it as a round: the stage, then evaluate. The sweep's row is locked."""
    number, params = _ask(sweep)
    fixed = sweep.fixed_settings
    round_ = round_launch(
        name=f"{sweep.name} · trial {number}"[:200],
        preset=Round.Preset.SINGLE,
        stage=sweep.stage,
        base_model=sweep.base_model,
        dataset=sweep.dataset,
        reward_model=sweep.reward_model,
        settings=fixed.get("shared") or {},
        stage_settings=trial_stage_settings(
            stage=sweep.stage,
            settings=fixed.get("shared") or {},
            stage_settings=fixed.get("stages") or {},
            params=params,
        ),
        launched_by=sweep.launched_by,
    )
    round_.sweep, round_.trial_number, round_.trial_params = sweep, number, params
    round_.trial_state = TrialState.RUNNING
    round_.save(update_fields=["sweep", "trial_number", "trial_params", "trial_state"])
    return round_


# --- trials ending -------------------------------------------------------------------------------


def sweep_trial_ended(*, round_: Round) -> None:
    """A trial's round ended (succeeded, failed or was cancelled): record how, queue the next trial,
    or finish the sweep.

    Called by ``round_advance`` and ``round_stop`` inside their transaction, with the round's row
    locked; locks the sweep's row. A later trial the launch checks now refuse (its snapshot file
    was removed, say) fails the sweep with the reason rather than the run that just ended.
    """
    sweep = Sweep.objects.select_for_update().get(pk=round_.sweep_id)
    if round_.trial_state == TrialState.PRUNED:
        round_.failure_reason = round_.trial_note
    elif round_.status == Round.Status.SUCCEEDED:
        value = trial_value(sweep=sweep, round_=round_)
        if value is None:
            round_.trial_state, round_.trial_value = TrialState.FAILED, None
            round_.trial_note = f"The trial did not report {sweep.metric}."
        else:
            round_.trial_state, round_.trial_value, round_.trial_note = TrialState.COMPLETE, value, ""
    else:
        round_.trial_state, round_.trial_value = TrialState.FAILED, None
        round_.trial_note = (round_.failure_reason or f"The trial {round_.status}.")[:500]
    round_.save(update_fields=["trial_state", "trial_value", "trial_note", "failure_reason"])
    _sweep_continue(sweep)


def trial_value(*, sweep: Sweep, round_: Round) -> float | None:
    """The trial's objective: the evaluate stage's figure, or the trained stage's final metric."""
    stage = Stage.EVALUATE if METRICS[sweep.metric].source == "evaluate" else sweep.stage
    run = round_.runs.filter(stage=stage, status=JobStatus.SUCCEEDED).order_by("-position").first()
    value = (run.final_metrics or {}).get(sweep.metric) if run is not None else None
    return float(value) if is_metric_value(value) else None


def _sweep_continue(sweep: Sweep) -> None:
    """Queue trials up to ``parallel`` at once and ``n_trials`` in all; finish the sweep when none is left."""
    sweep.best_trial = best_trial(sweep=sweep)
    fields = ["best_trial"]
    states = list(sweep.trials.values_list("trial_state", flat=True))
    asked, running = len(states), states.count(TrialState.RUNNING)
    while sweep.status == Sweep.Status.RUNNING and running < sweep.parallel and asked < sweep.n_trials:
        try:
            with transaction.atomic():
                _launch_trial(sweep)
        except TrainingError as error:
            logger.warning("sweep %s: trial %s refused: %s", sweep.pk, asked, error.message)
            sweep.status, sweep.finished_at = Sweep.Status.FAILED, timezone.now()
            sweep.failure_reason = f"Trial {asked} could not be queued: {error.message}"
            fields += ["status", "finished_at", "failure_reason"]
            break
        asked, running = asked + 1, running + 1
    if sweep.status == Sweep.Status.RUNNING and running == 0 and asked >= sweep.n_trials:
        sweep.status, sweep.finished_at = Sweep.Status.FINISHED, timezone.now()
        fields += ["status", "finished_at"]
        if sweep.best_trial is None:
            sweep.status, sweep.failure_reason = Sweep.Status.FAILED, "No trial completed."
            fields.append("failure_reason")
    sweep.save(update_fields=fields)


def best_trial(*, sweep: Sweep) -> Round | None:
    """The completed trial with the best value (the earliest on a tie)."""
    completed = sweep.trials.filter(trial_state=TrialState.COMPLETE, trial_value__isnull=False)
    order = "trial_value" if sweep.direction == Sweep.Direction.MINIMIZE else "-trial_value"
    return completed.order_by(order, "trial_number").first()


# --- pruning -------------------------------------------------------------------------------------


def sweep_trial_report(*, run: TrainingRun, step: int, values: dict[str, Any]) -> bool:
    """A trial's training run logged ``values`` at ``step``: ask the pruner whether to stop it, and if so
    cancel the run ("pruned by the sweep"). Returns whether it was pruned.

    Cheap for other runs and other metrics: a run outside a sweep costs at most its round's row (the
    worker's run holds it already); the pruner's queries run only for a sweep with a pruner, on an
    event that holds its curve, once two trials completed.
    """
    if run.round_id is None:
        return False
    round_ = run.round
    if round_.sweep_id is None or round_.trial_state != TrialState.RUNNING:
        return False
    sweep = round_.sweep
    if sweep.pruner == Sweep.Pruner.NONE or run.stage != sweep.stage or not is_metric_value(values.get(sweep.prune_on)):
        return False
    completed = list(sweep.trials.filter(trial_state=TrialState.COMPLETE))
    if len(completed) < PRUNER_STARTUP_TRIALS:
        return False
    curves = _curves(sweep, [*completed, round_])
    own = curves.get(round_.pk, {})
    optuna = _optuna()
    study = optuna.create_study(direction="minimize")  # the curves are losses, whatever the objective
    for trial in completed:
        curve = curves.get(trial.pk)
        if curve:
            study.add_trial(
                optuna.trial.create_trial(
                    value=curve[max(curve)], params={}, distributions={}, intermediate_values=curve
                )
            )
    current = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, params={}, distributions={}, intermediate_values=own
    )
    pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS)
    if not own or not pruner.prune(study, current):
        return False
    at_step = [curve[step] for trial in completed if step in (curve := curves.get(trial.pk, {}))]
    median = sorted(at_step)[len(at_step) // 2] if at_step else math.nan
    note = (
        f"Pruned by the sweep at step {step}: {sweep.prune_on} {min(own.values()):.4g} is worse than the median "
        f"{median:.4g} of the completed trials there."
    )
    return _prune(run=run, round_=round_, note=note)


@transaction.atomic
def _prune(*, run: TrainingRun, round_: Round, note: str) -> bool:
    """Record the trial as pruned and cancel its run (the engine checkpoints and stops).

    Locks the run's row, then the round's: the order in which a run's end (``run_succeed``,
    ``run_fail``) and a round's cancel take them, so none of them waits on the other in a circle.
    """
    if not TrainingRun.objects.select_for_update().filter(pk=run.pk, status__in=ACTIVE_STATUSES).exists():
        return False
    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    if round_.trial_state != TrialState.RUNNING:
        return False
    round_.trial_state, round_.trial_note = TrialState.PRUNED, note[:500]
    round_.save(update_fields=["trial_state", "trial_note"])
    run.round = round_
    run_cancel(run=run, actor=None)
    return True


def _curves(sweep: Sweep, trials: list[Round]) -> dict[int, dict[int, float]]:
    """Each trial's ``prune_on`` curve, ``{round id: {step: value}}``, from its training run's metric points."""
    curves: dict[int, dict[int, float]] = {trial.pk: {} for trial in trials}
    points = RunMetric.objects.filter(
        run__round__in=[trial.pk for trial in trials], run__stage=sweep.stage, kind=PRUNE_ON[sweep.prune_on]
    ).values_list("run__round_id", "step", "values")
    for round_id, step, values in points:
        value = values.get(sweep.prune_on)
        if is_metric_value(value):
            curves[round_id][step] = float(value)
    return curves


# --- what people ask for -------------------------------------------------------------------------


def sweep_cancel(*, sweep: Sweep, actor: AbstractBaseUser | None) -> Sweep:
    """Stop the sweep: no more trials, and its queued and running trials are cancelled.

    The sweep's row is locked and marked cancelled first, in a transaction of its own; each trial's
    round is then cancelled in its own (``round_cancel``: its runs, then its round, then, as the
    round stops, this sweep's row again), so a worker ending a trial meanwhile never waits for a lock
    this holds.
    """
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().get(pk=sweep.pk)
        if sweep.status != Sweep.Status.RUNNING:
            raise Conflict(f"The sweep already {sweep.status}; there is nothing to cancel.")
        sweep.status, sweep.finished_at = Sweep.Status.CANCELLED, timezone.now()
        sweep.failure_reason = "Cancelled."
        sweep.save(update_fields=["status", "finished_at", "failure_reason"])
        audit_record(
            actor=actor, action=Action.SWEEP_CANCEL, target=sweep, changes={"status": ("running", "cancelled")}
        )
    for round_ in sweep.trials.filter(trial_state=TrialState.RUNNING):
        if round_.runs.filter(status__in=[*ACTIVE_STATUSES, JobStatus.INTERRUPTED]).exists():
            round_cancel(round_=round_, actor=actor)
    sweep.refresh_from_db()
    return sweep


@transaction.atomic
def sweep_promote(*, sweep: Sweep, actor: AbstractBaseUser | None) -> Sweep:
    """Promote the best trial's model: the sweep names it (``promoted_model``), the models page marks it
    "best of sweep", and launch pages offer it first. Locks the sweep's row."""
    sweep = Sweep.objects.select_for_update().get(pk=sweep.pk)
    if sweep.status == Sweep.Status.RUNNING:
        raise Conflict("The sweep is still running: promote its best trial once it has finished (or cancel it).")
    best = best_trial(sweep=sweep)
    if best is None:
        raise Conflict("No trial of this sweep completed: there is no best model to promote.")
    trained = best.runs.filter(stage=sweep.stage, status=JobStatus.SUCCEEDED).first()
    model = trained.output_model if trained is not None else None
    if model is None:
        raise Conflict(f"Trial {best.trial_number}'s model is no longer registered.")
    before = sweep.promoted_model_id
    sweep.best_trial, sweep.promoted_model, sweep.promoted_at = best, model, timezone.now()
    sweep.save(update_fields=["best_trial", "promoted_model", "promoted_at"])
    audit_record(
        actor=actor,
        action=Action.SWEEP_PROMOTE,
        target=sweep,
        changes={"promoted_model": (before, model.pk)},
        trial=best.trial_number,
        value=best.trial_value,
    )
    return sweep
