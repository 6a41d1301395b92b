"""Launching rounds, and the transitions people ask for: cancel and resume.

A round is an ordered list of runs, each waiting for the one before it. It is queued until one of
its runs starts (``round_mark_running``), which may be after other rounds' runs. Models flow like this: a
policy stage (pretrain, sft, dpo, kto, ppo, rloo, grpo) trains the newest policy of the round (the
base model at first); a reward stage starts from that policy too, and its output becomes the reward
model of a later PPO, RLOO or GRPO stage. Unless switched off, the round ends with an evaluate stage: the newest policy
against the base model on the snapshot's held-out rows (``training.services.evaluation``). A
failed or cancelled stage stops the round; later stages are cancelled with the reason. Launch
checks everything it can before writing anything: stage requirements, the snapshot's rows, the
corpora the manager names or uploads (inside the data roots, and read to the end: a damaged file is
a 400 now rather than a round that fails later), and the engine's field checks of every stage's
spec (model paths are the engine's to check, when a stage starts: the models later stages train
from do not exist yet).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from labeling.models import PreferenceDataset
from rlhf_platform.audit import Action, audit_record
from training import stage_data
from training.engine import data
from training.engine.stages import STAGES
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
from training.paths import confined_path, data_roots
from training.realtime import notify_round, notify_run
from training.services.checkpoints import run_checkpoints_kept
from training.services.evaluation import evaluation_wiring
from training.services.uploads import corpus_upload_remove, corpus_upload_store
from training.specs import LaunchError, build_spec, check_shared_settings, check_spec, settings_for

# The training stages of each preset; the evaluate stage follows them unless it is switched off.
PRESET_STAGES = {
    Round.Preset.SFT_REWARD_PPO: ["sft", "reward", "ppo"],
    Round.Preset.SFT_REWARD_RLOO: ["sft", "reward", "rloo"],
    Round.Preset.SFT_REWARD_GRPO: ["sft", "reward", "grpo"],
    Round.Preset.SFT_DPO: ["sft", "dpo"],
    Round.Preset.SFT_KTO: ["sft", "kto"],
    Round.Preset.PRETRAIN_SFT: ["pretrain", "sft"],
}
# The launch form's file fields that stand in for each path field.
UPLOAD_FIELDS = {"pretrain_dataset": "pretrain_file", "evaluation_corpus": "evaluation_file"}
# Rows exported per stage when checking a launch: enough to know the snapshot feeds the stage.
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
    evaluate: bool = True,
    evaluation_corpus: str = "",
    pretrain_upload: UploadedFile | None = None,
    evaluation_upload: UploadedFile | None = None,
) -> Round:
    """Check and queue a round: the round and its first run queued, the others waiting.

    ``evaluate`` appends the evaluate stage; ``evaluation_corpus`` is a local text file it measures
    forgetting on (default: the snapshot's held-out texts). Paths must lie inside the data roots
    (``training.paths``). ``pretrain_upload`` and ``evaluation_upload`` are uploaded corpora in
    their place: stored (``corpus_upload_store``), checked like a path, and removed again when the
    launch is refused. Raises ``TrainingError``, writing nothing.
    """
    return _launch_with_uploads(
        _round_launch_checked,
        paths={"pretrain_dataset": pretrain_dataset, "evaluation_corpus": evaluation_corpus},
        uploads={"pretrain_dataset": pretrain_upload, "evaluation_corpus": evaluation_upload},
        name=name,
        preset=preset,
        base_model=base_model,
        launched_by=launched_by,
        stage=stage,
        dataset=dataset,
        reward_model=reward_model,
        settings=settings or {},
        stage_settings=stage_settings or {},
        evaluate=evaluate,
    )


def _launch_with_uploads(
    launch: Callable[..., Round],
    *,
    paths: dict[str, str],
    uploads: dict[str, UploadedFile | None],
    **arguments: Any,
) -> Round:
    """``launch(**arguments, **paths)``, each upload stored and standing in for its path field;
    the stored files are removed again when the launch is refused (or fails in any way)."""
    paths = {field: (path or "").strip() for field, path in paths.items()}
    stored: dict[str, Path] = {}
    try:
        for field, upload in uploads.items():
            if upload is None:
                continue
            if paths[field]:
                raise TrainingError(
                    "Name a path on the server or upload a file, not both.",
                    {UPLOAD_FIELDS[field]: "Either a path or a file, not both."},
                )
            stored[field] = corpus_upload_store(upload=upload, field=UPLOAD_FIELDS[field])
            paths[field] = str(stored[field])
        return launch(**arguments, **paths)
    except TrainingError as error:
        _remove_uploads(stored)
        raise _named_as_uploaded(error, stored, uploads) from None
    except BaseException:
        _remove_uploads(stored)
        raise


def _remove_uploads(stored: dict[str, Path]) -> None:
    for path in stored.values():
        corpus_upload_remove(path=path)


def _named_as_uploaded(
    error: TrainingError, stored: dict[str, Path], uploads: dict[str, UploadedFile | None]
) -> TrainingError:
    """The refusal as the manager sees it: an uploaded corpus by its own name, its faults on the file field."""
    message, errors = error.message, dict(error.errors)
    for field, path in stored.items():
        name = Path(uploads[field].name or "").name or "the uploaded file"
        message = message.replace(str(path), name)
        if field in errors:
            errors[UPLOAD_FIELDS[field]] = errors.pop(field).replace(str(path), name)
    return type(error)(message, errors)


def _round_launch_checked(
    *,
    name: str,
    preset: str,
    base_model: ModelArtifact,
    launched_by: AbstractBaseUser | None,
    stage: str | None,
    dataset: PreferenceDataset | None,
    pretrain_dataset: str,
    reward_model: ModelArtifact | None,
    settings: dict[str, Any],
    stage_settings: dict[str, dict[str, Any]],
    evaluate: bool,
    evaluation_corpus: str,
) -> Round:
    stages = _stages_of(preset, stage, evaluate)
    pretrain_dataset = _data_path(pretrain_dataset, "pretrain_dataset")
    evaluation_corpus = _data_path(evaluation_corpus, "evaluation_corpus")
    _check_inputs(stages, base_model, dataset, pretrain_dataset, reward_model, evaluation_corpus)
    _check_specs(
        stages, base_model, dataset, pretrain_dataset, reward_model, evaluation_corpus, settings, stage_settings
    )
    if Stage.EVALUATE in stages:
        _check_truthfulqa(settings_for(Stage.EVALUATE, settings, stage_settings))
    with transaction.atomic():
        round_ = Round.objects.create(
            name=(name or "").strip()[:200] or f"{' → '.join(_trained(stages))} on {base_model.name}"[:200],
            preset=preset,
            status=Round.Status.QUEUED,
            base_model=base_model,
            dataset=dataset,
            pretrain_dataset=pretrain_dataset,
            reward_model=reward_model,
            stage_settings={"shared": settings, "stages": stage_settings},
            evaluation_corpus=evaluation_corpus,
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
                reward_model=reward_model if _uses_registered_reward_model(stage_name, stages) else None,
                dataset=dataset if STAGES[stage_name].reads_snapshot or stage_name == Stage.EVALUATE else None,
                text_dataset=_text_dataset(stage_name, pretrain_dataset, evaluation_corpus),
                launched_by=launched_by,
            )
            notify_run(run)
            previous = run
        audit_record(actor=launched_by, action=Action.ROUND_LAUNCH, target=round_, preset=preset, stages=list(stages))
    return round_


def round_launch_evaluation(
    *,
    model: ModelArtifact,
    launched_by: AbstractBaseUser | None,
    compare_with: ModelArtifact | None = None,
    dataset: PreferenceDataset | None = None,
    evaluation_corpus: str = "",
    reward_model: ModelArtifact | None = None,
    settings: dict[str, Any] | None = None,
    name: str = "",
    evaluation_upload: UploadedFile | None = None,
) -> Round:
    """Queue an evaluation of a registered model, alone or against ``compare_with`` (its baseline),
    as a round of one evaluate stage. A reward model is scored on preference pairs; a policy gets
    every figure its data allows. Data: the snapshot's test split when it has one, else all of its
    rows (unless the model was trained on that snapshot), and the corpus for perplexity: a path
    inside the data roots, or ``evaluation_upload`` (stored, and removed again if refused).

    Raises ``TrainingError``, writing nothing.
    """
    return _launch_with_uploads(
        _round_launch_evaluation_checked,
        paths={"evaluation_corpus": evaluation_corpus},
        uploads={"evaluation_corpus": evaluation_upload},
        model=model,
        launched_by=launched_by,
        compare_with=compare_with,
        dataset=dataset,
        reward_model=reward_model,
        settings=settings or {},
        name=name,
    )


def _round_launch_evaluation_checked(
    *,
    model: ModelArtifact,
    launched_by: AbstractBaseUser | None,
    compare_with: ModelArtifact | None,
    dataset: PreferenceDataset | None,
    evaluation_corpus: str,
    reward_model: ModelArtifact | None,
    settings: dict[str, Any],
    name: str,
) -> Round:
    _check_evaluation_models(model, compare_with, reward_model, dataset)
    if dataset is None and not evaluation_corpus and not _names_benchmarks(settings):
        raise TrainingError(
            "Choose what to evaluate on: a dataset snapshot, a text corpus, or benchmarks.",
            {"dataset": "This field is required without a corpus or benchmarks."},
        )
    if dataset is not None:
        if not dataset.path.is_file():
            raise TrainingError(f"The snapshot's file {dataset.path} is missing.", {"dataset": "File missing."})
        held_out = dataset.counts.get("splits", {}).get("test")
        if not held_out and model.dataset_id == dataset.pk:
            raise TrainingError(
                f"{model.name} was trained on {dataset.name!r}, which holds nothing out: evaluate it on "
                "another snapshot, or on one built with a test share.",
                {"dataset": "The model trained on all of it."},
            )
    evaluation_corpus = _data_path(evaluation_corpus, "evaluation_corpus")
    if evaluation_corpus:
        _check_corpus(evaluation_corpus, "evaluation_corpus", text_field="text")
    _check_truthfulqa(settings)
    _check_evaluation_spec(model, compare_with, dataset, evaluation_corpus, reward_model, settings)
    baseline = compare_with or model
    with transaction.atomic():
        round_ = Round.objects.create(
            name=(name or "").strip()[:200]
            or (f"{model.name} against {compare_with.name}" if compare_with else f"Evaluation of {model.name}")[:200],
            preset=Round.Preset.EVALUATION,
            status=Round.Status.QUEUED,
            base_model=baseline,
            dataset=dataset,
            reward_model=reward_model,
            evaluation_corpus=evaluation_corpus,
            stage_settings={"shared": {}, "stages": {Stage.EVALUATE: settings}},
            launched_by=launched_by,
        )
        run = TrainingRun.objects.create(
            round=round_,
            stage=Stage.EVALUATE,
            status=JobStatus.QUEUED,
            params=settings_for(Stage.EVALUATE, {}, {Stage.EVALUATE: settings}),
            input_model=model,
            reward_model=reward_model,
            dataset=dataset,
            text_dataset=evaluation_corpus,
            launched_by=launched_by,
        )
        notify_run(run)
    return round_


def _check_evaluation_models(
    model: ModelArtifact,
    compare_with: ModelArtifact | None,
    reward_model: ModelArtifact | None,
    dataset: PreferenceDataset | None,
) -> None:
    is_reward = model.kind == ModelArtifact.Kind.REWARD_MODEL
    if compare_with is not None:
        if compare_with.pk == model.pk:
            raise TrainingError("Compare the model with another one.", {"compare_with": "The same model."})
        if is_reward or compare_with.kind == ModelArtifact.Kind.REWARD_MODEL:
            raise TrainingError(
                "Side by side compares two policies; a reward model is evaluated on its own.",
                {"compare_with": "Not a policy." if not is_reward else "Leave it empty for a reward model."},
            )
    if reward_model is not None and reward_model.kind != ModelArtifact.Kind.REWARD_MODEL:
        raise TrainingError(f"{reward_model.name} is not a reward model.", {"reward_model": "Not a reward model."})
    if is_reward and (dataset is None or dataset.kind != "preference"):
        raise TrainingError(
            "A reward model is evaluated on preference pairs: choose a preference snapshot.",
            {"dataset": "A preference snapshot is required for a reward model."},
        )


def _names_benchmarks(settings: dict[str, Any]) -> bool:
    return bool((settings.get("advanced") or {}).get("benchmarks"))


def _check_evaluation_spec(
    model: ModelArtifact,
    compare_with: ModelArtifact | None,
    dataset: PreferenceDataset | None,
    evaluation_corpus: str,
    reward_model: ModelArtifact | None,
    settings: dict[str, Any],
) -> None:
    """The evaluate stage's spec, with these settings, passes the engine's field checks."""
    kind = "reward" if model.kind == ModelArtifact.Kind.REWARD_MODEL else "policy"
    files = _evaluation_check_files(dataset, evaluation_corpus)
    wiring = evaluation_wiring(
        kind=kind,
        files=files,
        base_model=compare_with,
        reward_model_path=reward_model.path if reward_model is not None else None,
        benchmark_data="(benchmark data)",
    )
    try:
        spec = build_spec(
            stage=Stage.EVALUATE,
            settings=settings_for(Stage.EVALUATE, {}, {Stage.EVALUATE: settings}),
            model=model.path,
            gguf_file=model.gguf_file,
            output_dir="(output)",
            wiring=wiring,
        )
        check_spec(spec)
    except LaunchError as error:
        raise TrainingError(error.message, {error.field: error.message}) from None


@transaction.atomic
def run_cancel(*, run: TrainingRun, actor: AbstractBaseUser | None = None) -> TrainingRun:
    """Cancel a run. A running one is asked to stop (the worker sends SIGTERM; the engine checkpoints);
    any other unfinished one stops at once. Either way its round stops. Locks the run's row."""
    run = TrainingRun.objects.select_for_update().get(pk=run.pk)
    if run.status in FINAL_STATUSES:
        raise Conflict(f"The run already {run.status}; there is nothing to cancel.")
    audit_record(actor=actor, action=Action.RUN_CANCEL, target=run, changes={"status": (run.status, "cancelled")})
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
def round_cancel(*, round_: Round, actor: AbstractBaseUser | None = None) -> Round:
    """Cancel the round's unfinished runs (a running one is asked to stop). Locks the round's runs."""
    runs = list(round_.runs.select_for_update().filter(status__in=[*ACTIVE_STATUSES, JobStatus.INTERRUPTED]))
    if not runs:
        raise Conflict(f"The round already {round_.status}; there is nothing to cancel.")
    audit_record(
        actor=actor, action=Action.ROUND_CANCEL, target=round_, changes={"status": (round_.status, "cancelled")}
    )
    for run in runs:
        run.refresh_from_db(fields=["status"])
        if run.status in (*ACTIVE_STATUSES, JobStatus.INTERRUPTED):  # an earlier cancel may have stopped it already
            run_cancel(run=run, actor=actor)
    round_.refresh_from_db()
    return round_


@transaction.atomic
def run_resume(*, run: TrainingRun, actor: AbstractBaseUser | None = None) -> TrainingRun:
    """Queue an interrupted, cancelled or failed run again, from its last checkpoint.

    The round is queued again (running once the run starts), and its later stages that never
    started wait again. Locks the run's row and the round's.
    """
    run = TrainingRun.objects.select_for_update().get(pk=run.pk)
    if run.status not in RESUMABLE_STATUSES:
        raise Conflict(f"Only interrupted, cancelled or failed runs can resume; this one is {run.status}.")
    if run.depends_on_id is not None and run.depends_on.status != JobStatus.SUCCEEDED:
        raise Conflict(f"The stage before it ({run.depends_on.stage}) has not succeeded; resume that one first.")
    audit_record(actor=actor, action=Action.RUN_RESUME, target=run, changes={"status": (run.status, "queued")})
    return run_queue_again(run=run)


def run_queue_again(*, run: TrainingRun, automatically: bool = False) -> TrainingRun:
    """The resume itself, by hand (``run_resume``) or by the worker's auto-resume policy
    (``automatically``: counted in ``auto_resumes``). The engine resumes from the newest complete
    checkpoint on disk ('latest'), which the run's list shows.

    Runs inside the caller's transaction, with the run's row locked; locks the round's.
    """
    run.status = JobStatus.QUEUED
    run.resume_from = "latest"
    run.cancel_requested = False
    run.error = ""
    run.finished_at = None
    run.checkpoints = run_checkpoints_kept(run=run)
    fields = ["status", "resume_from", "cancel_requested", "error", "finished_at", "checkpoints"]
    if automatically:
        run.auto_resumes += 1
        fields.append("auto_resumes")
    run.save(update_fields=fields)
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
    if round_.sweep_id is not None:
        _sweep_trial_ended(round_)


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
        if round_.sweep_id is not None:
            _sweep_trial_ended(round_)


def _sweep_trial_ended(round_: Round) -> None:
    """A sweep's trial ended: the sweep records it and queues its next trial (in this transaction).

    Imported here: the sweeps service launches its trials through this module.
    """
    from training.services.sweeps import sweep_trial_ended

    sweep_trial_ended(round_=round_)


def round_mark_running(*, round_id: int) -> None:
    """One of the round's runs started: a queued round is running from now on.

    Runs inside the claim's transaction. One conditional UPDATE, so no lock is needed: only a queued
    round changes, and a round already running, finished or stopped keeps its status.
    """
    if Round.objects.filter(pk=round_id, status=Round.Status.QUEUED).update(status=Round.Status.RUNNING):
        notify_round(Round.objects.get(pk=round_id))


# --- launch checks -------------------------------------------------------------------------------


def _stages_of(preset: str, stage: str | None, evaluate: bool) -> list[str]:
    if preset not in Round.Preset.values:
        raise TrainingError(f"Unknown preset {preset!r}.", {"preset": f"One of {', '.join(Round.Preset.values)}."})
    if preset == Round.Preset.SINGLE:
        trainable = [name for name in Stage.values if STAGES[name].trains_on is not None]
        if stage not in trainable:
            raise TrainingError("Choose the stage to run.", {"stage": f"One of {', '.join(trainable)}."})
        stages = [stage]
    else:
        stages = list(PRESET_STAGES[preset])
    return [*stages, Stage.EVALUATE] if evaluate else stages


def _trained(stages: list[str]) -> list[str]:
    """The stages that train, as a round's default name lists them (its evaluation goes without saying)."""
    return [stage for stage in stages if STAGES[stage].trains_on is not None]


def _uses_registered_reward_model(stage: str, stages: list[str]) -> bool:
    """PPO trains against, and evaluation scores with, the round's registered reward model when no
    reward stage comes before it."""
    trained_before = any(STAGES[name].makes == "reward_model" for name in stages[: stages.index(stage)])
    return (STAGES[stage].needs_reward_model or stage == Stage.EVALUATE) and not trained_before


def _text_dataset(stage: str, pretrain_dataset: str, evaluation_corpus: str) -> str:
    if STAGES[stage].trains_on == "text":
        return pretrain_dataset
    return evaluation_corpus if stage == Stage.EVALUATE else ""


def _check_inputs(
    stages: list[str],
    base_model: ModelArtifact,
    dataset: PreferenceDataset | None,
    pretrain_dataset: str,
    reward_model: ModelArtifact | None,
    evaluation_corpus: str,
) -> None:
    if base_model.kind == ModelArtifact.Kind.REWARD_MODEL:
        raise TrainingError("The base model is a reward model; choose a causal LM.", {"base_model": "Not a policy."})
    snapshot_stages = [stage for stage in stages if STAGES[stage].reads_snapshot]
    if snapshot_stages:
        if dataset is None:
            raise TrainingError(
                f"The {snapshot_stages[0]} stage needs a dataset snapshot.", {"dataset": "This field is required."}
            )
        if not dataset.path.is_file():
            raise TrainingError(f"The snapshot's file {dataset.path} is missing.", {"dataset": "File missing."})
        for stage in snapshot_stages:
            try:
                stage_data.check_snapshot_kind(stage=stage, kind=dataset.kind, dataset_name=dataset.name)
            except stage_data.StageDataError as error:
                raise TrainingError(str(error), {"dataset": str(error)}) from None
    if any(STAGES[stage].trains_on == "text" for stage in stages) and not pretrain_dataset:
        raise TrainingError(
            "The pretrain stage needs a text corpus: name a path on the server or upload a file.",
            {"pretrain_dataset": "This field is required."},
        )
    for stage in stages:
        if STAGES[stage].needs_reward_model and reward_model is None and _uses_registered_reward_model(stage, stages):
            raise TrainingError(
                f"{STAGES[stage].label} needs a reward model: add a reward stage before it (preset sft_reward_{stage}) "
                "or choose a registered reward model.",
                {"reward_model": f"This field is required for {STAGES[stage].label}."},
            )
    if reward_model is not None and reward_model.kind != ModelArtifact.Kind.REWARD_MODEL:
        raise TrainingError(f"{reward_model.name} is not a reward model.", {"reward_model": "Not a reward model."})
    if Stage.EVALUATE in stages:
        _check_evaluation_inputs(dataset, evaluation_corpus, pretrain_dataset)


def _check_evaluation_inputs(dataset: PreferenceDataset | None, evaluation_corpus: str, pretrain_dataset: str) -> None:
    """An honest verdict needs data the round never trains on: the snapshot's test split, or a slice
    of the pretraining corpus (held out when the pretrain stage starts)."""
    if dataset is None:
        if not evaluation_corpus and not pretrain_dataset:
            raise TrainingError(
                "The evaluate stage needs held-out data: a dataset snapshot with a test split, or a text corpus "
                "to measure forgetting on. Choose one, or switch evaluation off.",
                {"evaluate": "No held-out data."},
            )
    elif not dataset.counts.get("splits", {}).get("test"):
        raise TrainingError(
            f"The evaluate stage compares the models on held-out prompts, and {dataset.name!r} holds none out "
            "(its test share is 0). Build the snapshot again with a test share (10% is usual), or switch "
            "evaluation off.",
            {"dataset": "No test split."},
        )
    if evaluation_corpus:
        # Measured paragraph by paragraph from its "text" rows (stage_data.corpus_pieces_file).
        _check_corpus(evaluation_corpus, "evaluation_corpus", text_field="text")


def _data_path(raw: str, field: str) -> str:
    """A data path named at launch, resolved: inside the data roots, and there ("" stays "")."""
    if not raw:
        return ""
    location = confined_path(raw, roots=data_roots(), field=field)
    if not location.exists():
        raise TrainingError(f"{location} does not exist on this machine.", {field: "No such local path."})
    return str(location)


def _check_corpus(path: str, field: str, *, text_field: str) -> None:
    """The corpus reads to the end, as UTF-8, with its text column: a 400 now, not a round that fails later."""
    try:
        data.check_corpus(path, text_field=text_field)
    except data.DataError as error:
        raise TrainingError(f"{field}: {error}", {field: str(error)}) from None


def _check_truthfulqa(stage_settings: dict[str, Any]) -> None:
    """The TruthfulQA file an evaluation names in its settings lies inside the data roots, like any data path.

    Whether it is there is the engine's to find: benchmark data missing at run time is noted in the
    report, not fatal (``training.engine.benchmarks``).
    """
    advanced = stage_settings.get("advanced")
    path = advanced.get("truthfulqa") if isinstance(advanced, dict) else None
    if isinstance(path, str) and path.strip():
        confined_path(path.strip(), roots=data_roots(), field="truthfulqa")


def _check_specs(
    stages: list[str],
    base_model: ModelArtifact,
    dataset: PreferenceDataset | None,
    pretrain_dataset: str,
    reward_model: ModelArtifact | None,
    evaluation_corpus: str,
    settings: dict[str, Any],
    stage_settings: dict[str, dict[str, Any]],
) -> None:
    """The snapshot feeds each stage (a sample of its rows is exported), and each stage's spec passes
    the engine's field checks. Models earlier stages will make are named by where they will be."""
    try:
        check_shared_settings(stages, settings)
    except LaunchError as error:
        raise TrainingError(error.message, {error.field: error.message}) from None
    for stage_name in stage_settings:
        if stage_name not in stages:
            raise TrainingError(
                f"stage_settings names {stage_name!r}, which is not a stage of this round.",
                {"stage_settings": stage_name},
            )
    with tempfile.TemporaryDirectory(prefix="launch-check-") as work:
        work_dir = Path(work)
        for index, stage in enumerate(stages):
            model, gguf_file = (
                (base_model.path, base_model.gguf_file) if index == 0 else ("(earlier stage's model)", "")
            )
            if stage == Stage.EVALUATE:
                trains_reward = any(STAGES[name].makes == "reward_model" for name in stages)
                wiring = evaluation_wiring(
                    kind="policy",
                    files=_evaluation_check_files(dataset, evaluation_corpus or pretrain_dataset),
                    base_model=base_model,
                    reward_model_path="(reward model)" if trains_reward or reward_model is not None else None,
                    benchmark_data="(benchmark data)",
                )
            else:
                wiring = {"dataset": _check_stage_rows(stage, dataset, pretrain_dataset, work_dir)}
                if STAGES[stage].needs_reward_model:
                    wiring["reward_model"] = reward_model.path if reward_model is not None else "(reward model)"
            try:
                spec = build_spec(
                    stage=stage,
                    settings=settings_for(stage, settings, stage_settings),
                    model=model,
                    gguf_file=gguf_file,
                    output_dir=str(work_dir / "out" / stage),
                    wiring=wiring,
                )
                check_spec(spec)
            except LaunchError as error:
                raise TrainingError(error.message, {error.field: error.message}) from None
            if STAGES[stage].trains_on == "text":
                _check_corpus(pretrain_dataset, "pretrain_dataset", text_field=spec.get("text_field") or "text")


def _check_stage_rows(stage: str, dataset: PreferenceDataset | None, pretrain_dataset: str, work_dir: Path) -> str:
    """A sample of the rows the stage will train on (the snapshot has some for it), as the spec's ``dataset``."""
    if STAGES[stage].trains_on == "text":
        return pretrain_dataset
    try:
        train_path, _held_out = stage_data.export_stage_files(
            stage=stage, kind=dataset.kind, snapshot=dataset.path, directory=work_dir / stage, limit=CHECK_ROWS
        )
    except stage_data.StageDataError as error:
        raise TrainingError(str(error), {"dataset": str(error)}) from None
    return train_path


def _evaluation_check_files(dataset: PreferenceDataset | None, corpus: str) -> dict[str, str]:
    """The held-out files the evaluate stage will get, by name (none is read at launch)."""
    files = {}
    if dataset is not None:
        files = {"prompts": "(held-out prompts)", "texts": "(held-out texts)"}
        if dataset.kind == "preference":
            files["preferences"] = "(held-out pairs)"
    if corpus:
        files["texts"] = corpus
    return files
