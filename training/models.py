"""Model registry, training runs and rounds, and generation jobs.

The database is the job queue: a ``TrainingRun`` or ``GenerationJob`` row with status ``queued`` is
work for ``manage.py worker``. Writes go through ``training.services``; every status change is one
service function there. Reads for pages and the API go through ``training.selectors``.
"""

from __future__ import annotations

import math
from pathlib import Path

from django.conf import settings
from django.db import models

from labeling.models import Campaign, PreferenceDataset
from training.engine.stages import STAGES


class ModelArtifact(models.Model):
    """A model on local disk: registered by hand, or the output of a training run (its lineage)."""

    class Kind(models.TextChoices):
        CAUSAL_LM = "causal_lm", "Causal language model"
        REWARD_MODEL = "reward_model", "Reward model"
        ADAPTER = "adapter", "Adapter on a base model"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CAUSAL_LM)
    path = models.CharField(max_length=1000, help_text="Local model directory (safetensors, adapter, or GGUF's dir).")
    gguf_file = models.CharField(max_length=255, blank=True, help_text="GGUF file name inside `path`, if any.")
    base_model = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="derived_models"
    )
    size_bytes = models.BigIntegerField(default=0, help_text="Bytes of the weight files.")
    parameter_count = models.BigIntegerField(null=True, blank=True)
    trainable_parameter_count = models.BigIntegerField(null=True, blank=True, help_text="As trained (adapters).")
    produced_by = models.ForeignKey(
        "TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="produced_models"
    )
    dataset = models.ForeignKey(
        PreferenceDataset, null=True, blank=True, on_delete=models.PROTECT, related_name="trained_models"
    )
    evaluation = models.JSONField(default=dict, blank=True, help_text="Final metrics and evaluation results.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def directory(self) -> Path:
        return Path(self.path)


# The stages a round can hold, from the engine's table (Stage.SFT, Stage.EVALUATE, ...).
Stage = models.TextChoices(
    "Stage", [(stage.name.upper(), (stage.name, stage.label)) for stage in STAGES.values() if stage.in_rounds]
)


class JobStatus(models.TextChoices):
    WAITING = "waiting", "Waiting for an earlier stage"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    INTERRUPTED = "interrupted", "Interrupted"


ACTIVE_STATUSES = (JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RUNNING)
FINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
# What cancel and resume accept: anything not final can be cancelled; these can resume.
RESUMABLE_STATUSES = (JobStatus.INTERRUPTED, JobStatus.CANCELLED, JobStatus.FAILED)


def is_metric_value(value: object) -> bool:
    """A number a metric series or an evaluation table can hold: finite, and not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Job(models.Model):
    """What the worker needs of any queued work: status, engine spec, progress, heartbeat, logs."""

    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    spec = models.JSONField(default=dict, blank=True, help_text="The engine spec as last run (training.engine.spec).")
    workdir = models.CharField(max_length=1000, blank=True, help_text="Exported data, spec.json and outputs.")
    cancel_requested = models.BooleanField(default=False)
    resume_from = models.CharField(max_length=1000, blank=True, help_text="'latest' or a checkpoint path.")
    # Progress, as the engine's last `progress` event said.
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    epoch = models.FloatField(null=True, blank=True)
    tokens_seen = models.BigIntegerField(default=0)
    eta_s = models.FloatField(null=True, blank=True, help_text="Seconds left, estimated.")
    log_tail = models.TextField(blank=True, help_text="The engine's last stderr lines.")
    error = models.TextField(blank=True, help_text="Why it failed, fit to show as it is.")
    worker = models.CharField(max_length=200, blank=True, help_text="Name of the worker that holds (or last held) it.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    auto_resumes = models.PositiveSmallIntegerField(
        default=0, help_text="Times it was queued again automatically after its worker stopped (TRAINING_AUTO_RESUME)."
    )
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def progress_fraction(self) -> float | None:
        return min(self.step / self.total_steps, 1.0) if self.total_steps else None


class WorkerPresence(models.Model):
    """A live ``manage.py worker``: its name (stable across restarts) and the process that holds it.

    The process beats here while it lives. A second process asking for a name that a live one
    holds is refused; a restarted worker takes its name over from a dead predecessor at once.
    """

    name = models.CharField(max_length=200, unique=True)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"worker {self.name} ({self.host}, pid {self.pid})"


class TrialState(models.TextChoices):
    """How a sweep's trial (a round) stands, in Optuna's terms."""

    RUNNING = "running", "Running"
    COMPLETE = "complete", "Complete"
    PRUNED = "pruned", "Pruned"
    FAILED = "failed", "Failed"


class Round(models.Model):
    """An ordered pipeline of training runs; each stage's output model is the next stage's input."""

    class Preset(models.TextChoices):
        SFT_REWARD_PPO = "sft_reward_ppo", "SFT → reward → PPO"
        SFT_REWARD_RLOO = "sft_reward_rloo", "SFT → reward → RLOO"
        SFT_REWARD_GRPO = "sft_reward_grpo", "SFT → reward → GRPO"
        SFT_DPO = "sft_dpo", "SFT → DPO"
        SFT_KTO = "sft_kto", "SFT → KTO"
        PRETRAIN_SFT = "pretrain_sft", "Pretrain → SFT"
        SINGLE = "single", "Single stage"
        # A registered model evaluated on its own, or against another one (``base_model``).
        EVALUATION = "evaluation", "Evaluation"

    class Status(models.TextChoices):
        # Queued until one of its runs starts (a run may wait behind other rounds' runs).
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    name = models.CharField(max_length=200)
    preset = models.CharField(max_length=20, choices=Preset.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    base_model = models.ForeignKey(ModelArtifact, on_delete=models.PROTECT, related_name="rounds")
    dataset = models.ForeignKey(
        PreferenceDataset, null=True, blank=True, on_delete=models.PROTECT, related_name="training_rounds"
    )
    pretrain_dataset = models.CharField(
        max_length=1000, blank=True, help_text="Local text file or directory for a pretrain stage."
    )
    reward_model = models.ForeignKey(
        ModelArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="A registered reward model for PPO when the round trains none.",
    )  # fmt: skip
    stage_settings = models.JSONField(default=dict, blank=True, help_text="Launch settings: stage -> fields.")
    evaluation_corpus = models.CharField(
        max_length=1000,
        blank=True,
        help_text="Local text the evaluate stage measures forgetting on (default: held-out).",
    )
    failure_reason = models.TextField(blank=True)
    # A round launched as one variant of a comparison (``training.services.comparisons``).
    comparison = models.ForeignKey(
        "Comparison", null=True, blank=True, on_delete=models.SET_NULL, related_name="rounds"
    )
    variant = models.CharField(max_length=40, blank=True, help_text="Its variant in the comparison, e.g. lora or dpo.")
    # A trial of a hyperparameter sweep (training.services.sweeps): its number, the parameters it
    # was asked, and, once it ended, how (Optuna's states) and its objective value.
    sweep = models.ForeignKey("Sweep", null=True, blank=True, on_delete=models.CASCADE, related_name="trials")
    trial_number = models.PositiveSmallIntegerField(null=True, blank=True)
    trial_params = models.JSONField(default=dict, blank=True)
    trial_state = models.CharField(max_length=10, choices=TrialState.choices, blank=True)
    trial_value = models.FloatField(null=True, blank=True)
    trial_note = models.CharField(max_length=500, blank=True, help_text="Why it was pruned or failed.")
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["sweep", "trial_number"], name="one_round_per_trial_number"),
        ]

    def __str__(self) -> str:
        return self.name


class Sweep(models.Model):
    """A hyperparameter search: trials are single-stage rounds (the stage, then evaluate) in the queue.

    The rows are the truth. Optuna's study is rebuilt in memory from the trials each time a
    trial is asked for or a running one is checked for pruning (``training.services.sweeps``).
    ``search_space`` is ``[{"name": spec field path, "type": "float" | "int" | "categorical",
    "low", "high", "log"} | {..., "choices": [...]}]``.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Direction(models.TextChoices):
        MINIMIZE = "minimize", "Minimize"
        MAXIMIZE = "maximize", "Maximize"

    class Pruner(models.TextChoices):
        NONE = "none", "None"
        MEDIAN = "median", "Median (stop a trial whose curve is worse than the finished trials' median)"

    name = models.CharField(max_length=200)
    stage = models.CharField(max_length=10, choices=Stage.choices)
    dataset = models.ForeignKey(PreferenceDataset, on_delete=models.PROTECT, related_name="sweeps")
    base_model = models.ForeignKey(ModelArtifact, on_delete=models.PROTECT, related_name="sweeps")
    reward_model = models.ForeignKey(ModelArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    search_space = models.JSONField(default=list)
    fixed_settings = models.JSONField(default=dict, blank=True, help_text="Every trial's settings: shared, stages.")
    n_trials = models.PositiveSmallIntegerField()
    parallel = models.PositiveSmallIntegerField(default=1, help_text="Trials queued at once.")
    metric = models.CharField(max_length=100)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    pruner = models.CharField(max_length=10, choices=Pruner.choices, default=Pruner.NONE)
    prune_on = models.CharField(max_length=20, default="loss", help_text="The training-time curve the pruner reads.")
    seed = models.IntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING, db_index=True)
    failure_reason = models.TextField(blank=True)
    best_trial = models.ForeignKey(Round, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    promoted_model = models.ForeignKey(
        ModelArtifact, null=True, blank=True, on_delete=models.SET_NULL, related_name="promoted_by_sweeps"
    )
    promoted_at = models.DateTimeField(null=True, blank=True)
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class TrainingRun(Job):
    """One engine stage. In a round, it waits for ``depends_on`` and trains that run's output model."""

    round = models.ForeignKey(Round, null=True, blank=True, on_delete=models.CASCADE, related_name="runs")
    position = models.PositiveSmallIntegerField(default=0, help_text="Order within the round, from 0.")
    depends_on = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="dependents")
    stage = models.CharField(max_length=10, choices=Stage.choices)
    params = models.JSONField(default=dict, blank=True, help_text="Launch fields the spec is built from.")
    input_model = models.ForeignKey(
        ModelArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs",
        help_text="Set at launch, or from depends_on's output when this run starts.",
    )  # fmt: skip
    reward_model = models.ForeignKey(
        ModelArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="PPO: the reward model (a registered one, or an earlier reward stage's output).",
    )  # fmt: skip
    dataset = models.ForeignKey(
        PreferenceDataset, null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs"
    )
    text_dataset = models.CharField(
        max_length=1000, blank=True, help_text="Pretrain: local .txt file or dir. Evaluate: its corpus."
    )
    latest_metrics = models.JSONField(default=dict, blank=True)
    final_metrics = models.JSONField(default=dict, blank=True)
    checkpoints = models.JSONField(default=list, blank=True, help_text="[{step, path}] in the order written.")
    output_model = models.ForeignKey(ModelArtifact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at", "position"]
        indexes = [models.Index(fields=["status", "created_at"], name="run_queue")]

    def __str__(self) -> str:
        return f"{self.stage} run {self.pk}"


class RunMetric(models.Model):
    """One `metrics` or `eval` event of a run: a point of its metric series."""

    class Kind(models.TextChoices):
        TRAIN = "train", "Training"
        EVAL = "eval", "Evaluation"

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metric_points")
    kind = models.CharField(max_length=5, choices=Kind.choices, default=Kind.TRAIN)
    step = models.PositiveIntegerField()
    epoch = models.FloatField(null=True, blank=True)
    values = models.JSONField(help_text="Metric name -> number, e.g. loss, learning_rate, grad_norm.")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run_id", "step", "id"]
        indexes = [models.Index(fields=["run", "kind", "step"], name="run_metric_series")]

    def __str__(self) -> str:
        return f"{self.kind} metrics of run {self.run_id} at step {self.step}"


class GenerationJob(Job):
    """A registered model answers a prompt set, K candidates each; the result is a new campaign's tasks."""

    model = models.ForeignKey(ModelArtifact, on_delete=models.PROTECT, related_name="generation_jobs")
    compare_with = models.ForeignKey(
        ModelArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The previous policy: each task then pairs the new model's answers against its answers.",
    )  # fmt: skip
    source_campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Prompts from this campaign's tasks (else the imported `prompts`).",
    )  # fmt: skip
    prompts = models.JSONField(default=list, blank=True, help_text="Imported prompts: [{id?, prompt, meta?}].")
    params = models.JSONField(default=dict, blank=True, help_text="num_candidates, temperature, max_new_tokens...")
    campaign_name = models.CharField(max_length=200)
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_jobs",
        help_text="The new campaign, created when the job succeeds.",
    )  # fmt: skip
    result = models.JSONField(default=dict, blank=True, help_text="Counts from the engine and the import.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"generation job {self.pk}"


class Comparison(models.Model):
    """Variants of one setup trained on the same snapshot, seed and budget: one round each.

    ``adapters`` compares adapter methods (LoRA, IA3, full...) of one training ``stage``;
    ``alignment`` compares alignment stages (DPO, PPO...) trained with one ``adapter`` method.
    Each variant is an ordinary round of the ``single`` preset (``Round.comparison``, ``Round.variant``).
    """

    class Kind(models.TextChoices):
        ADAPTERS = "adapters", "Adapter methods of one stage"
        ALIGNMENT = "alignment", "Alignment methods"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    stage = models.CharField(max_length=10, blank=True, help_text="adapters: the stage every variant runs.")
    adapter = models.CharField(max_length=20, blank=True, help_text="alignment: the adapter method of every variant.")
    variants = models.JSONField(default=list, help_text="The variants' names, in the order launched.")
    base_model = models.ForeignKey(ModelArtifact, on_delete=models.PROTECT, related_name="+")
    dataset = models.ForeignKey(PreferenceDataset, on_delete=models.PROTECT, related_name="+")
    reward_model = models.ForeignKey(
        ModelArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="A registered reward model for the variants that train against one (PPO).",
    )  # fmt: skip
    seed = models.IntegerField(default=42)
    max_steps = models.PositiveIntegerField(null=True, blank=True, help_text="Budget: optimizer steps per variant.")
    epochs = models.FloatField(null=True, blank=True, help_text="Budget when max_steps is empty: passes over the data.")
    stage_settings = models.JSONField(
        default=dict, blank=True, help_text="Launch settings of every variant: {shared, stages}, as a round's."
    )
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name
