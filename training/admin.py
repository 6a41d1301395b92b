"""Admin for the training models: for looking things up. Runs change through the services and the worker."""

from __future__ import annotations

from django.contrib import admin

from training.models import Comparison, GenerationJob, ModelArtifact, Round, RunMetric, TrainingRun


@admin.register(ModelArtifact)
class ModelArtifactAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "path", "parameter_count", "produced_by", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "path"]
    readonly_fields = ["produced_by", "dataset", "base_model", "created_by", "created_at"]


class TrainingRunInline(admin.TabularInline):
    model = TrainingRun
    fields = ["position", "stage", "status", "step", "total_steps", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ["name", "preset", "status", "base_model", "dataset", "created_at"]
    list_filter = ["preset", "status"]
    readonly_fields = ["status", "failure_reason", "launched_by", "created_at", "finished_at"]
    inlines = [TrainingRunInline]


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "stage", "status", "round", "step", "total_steps", "heartbeat_at", "created_at"]
    list_filter = ["stage", "status"]
    # Status and progress belong to the services and the worker.
    readonly_fields = [
        "status", "cancel_requested", "step", "total_steps", "epoch", "tokens_seen", "eta_s", "worker",
        "heartbeat_at", "started_at", "finished_at", "output_model", "checkpoints", "latest_metrics",
        "final_metrics", "log_tail", "error", "spec", "workdir",
    ]  # fmt: skip


@admin.register(RunMetric)
class RunMetricAdmin(admin.ModelAdmin):
    list_display = ["run", "kind", "step", "recorded_at"]
    list_filter = ["kind"]


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ["id", "model", "status", "campaign_name", "campaign", "created_at"]
    list_filter = ["status"]
    readonly_fields = [
        "status", "cancel_requested", "step", "total_steps", "worker", "heartbeat_at", "started_at",
        "finished_at", "campaign", "result", "log_tail", "error", "spec", "workdir",
    ]  # fmt: skip


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "stage", "adapter", "base_model", "dataset", "created_at"]
    list_filter = ["kind"]
    # Its rounds were launched from these: changing them here would no longer describe the rounds.
    readonly_fields = [
        "kind", "stage", "adapter", "variants", "base_model", "dataset", "reward_model", "seed", "max_steps",
        "epochs", "stage_settings", "launched_by", "created_at",
    ]  # fmt: skip
