"""Admin for the labeling models: for looking things up and small fixes.

Everything with rules (questions, statuses, imports, assignments, judgements) changes
through the manager pages and the services, so the admin shows it read-only. Judgements
are immutable: they cannot be added, changed or deleted here, and because deleting a
task or campaign would delete its assignments and judgements, the admin refuses that
too once any exist (it needs delete permission on every object that would go).
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from labeling.models import Assignment, Campaign, Judgement, Project, Response, Task


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_by", "created_at"]
    search_fields = ["name", "slug", "description"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request: HttpRequest, obj: Project, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "project", "status", "overlap", "gold_rate", "created_at"]
    list_filter = ["status", "project"]
    search_fields = ["name", "slug", "project__name"]
    # Status moves, questions and the assignment settings have rules (campaign_update checks
    # their ranges); they change on the manager pages.
    readonly_fields = [
        "status", "question_schema", "overlap", "lease_seconds", "gold_rate", "created_by", "created_at", "updated_at",
    ]  # fmt: skip
    filter_horizontal = ["reviewers"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created on the manager pages, where the questions are checked


class ResponseInline(admin.TabularInline):
    model = Response
    fields = ["position", "model_name", "text", "meta"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return False  # a task's responses are fixed by its import; reviewers may have compared them


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["__str__", "campaign", "is_gold", "response_count", "judgement_count", "slots_taken", "created_at"]
    list_filter = ["is_gold", "campaign"]
    search_fields = ["external_id", "campaign__name", "campaign__slug"]
    list_select_related = ["campaign"]
    inlines = [ResponseInline]

    # Tasks come from imports and their counters are kept by the services: view only here.
    # A task without assignments can still be deleted.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return False


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["pk", "reviewer", "task", "state", "assigned_at", "lease_expires_at", "finished_at"]
    list_filter = ["state", "task__campaign"]
    search_fields = ["reviewer__username", "task__external_id"]
    list_select_related = ["reviewer", "task"]
    date_hierarchy = "assigned_at"

    # Assignment states move with the task counters, inside the services: view only here.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Assignment | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Assignment | None = None) -> bool:
        return False


@admin.register(Judgement)
class JudgementAdmin(admin.ModelAdmin):
    list_display = ["pk", "reviewer", "task", "submitted_at", "time_spent_ms", "retracted_at"]
    list_filter = [("retracted_at", admin.EmptyFieldListFilter), "task__campaign"]
    search_fields = ["reviewer__username", "task__external_id", "client_submission_id"]
    list_select_related = ["reviewer", "task"]
    date_hierarchy = "submitted_at"

    # Raw judgements are never changed: datasets are derived from them and name them.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Judgement | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Judgement | None = None) -> bool:
        return False
