"""Projects, campaigns, tasks and the reviewers' work on them.

Writes go through ``labeling.services``; the models hold data and small derived
properties only. Counters on ``Task`` are maintained by the assignment and
judgement services inside the same transaction as the change they count.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.expressions import OrderBy
from django.db.models.functions import Length

from labeling.rendering import RENDERER_VERSION
from labeling.schema import QuestionSchema, parse_question_schema


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    CLOSED = "closed", "Closed"


class Campaign(models.Model):
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="campaigns")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    question_schema = models.JSONField(help_text="Questions as JSON; see labeling.schema.")
    guidelines = models.TextField(blank=True, help_text="Markdown shown to reviewers beside every task.")
    overlap = models.PositiveSmallIntegerField(default=3, help_text="Judgements wanted per task.")
    lease_seconds = models.PositiveIntegerField(default=900, help_text="How long a reviewer holds a task.")
    gold_rate = models.FloatField(default=0.0, help_text="Share of assignments that are gold tasks (0 to 1).")
    reviewers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="campaigns")
    status = models.CharField(max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="campaign_overlap_positive"),
            models.CheckConstraint(condition=Q(lease_seconds__gte=30), name="campaign_lease_at_least_30s"),
            models.CheckConstraint(condition=Q(gold_rate__gte=0, gold_rate__lte=1), name="campaign_gold_rate_share"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def schema(self) -> QuestionSchema:
        return parse_question_schema(self.question_schema)


class PromptText(models.Func):
    """A task's prompt as text: the string itself, or the JSON of a message list."""

    output_field = models.TextField()

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="json_extract(%(expressions)s, '$')", **extra)

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="(%(expressions)s #>> '{}')", **extra)


class Task(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="tasks")
    external_id = models.CharField(max_length=255, blank=True, help_text="The import's id; dedup key.")
    # Either a string, or a list of {"role", "content"} messages.
    prompt = models.JSONField()
    meta = models.JSONField(default=dict, blank=True)
    # Gold answer by response position (import order): {"preferred": 0} or {"ranking": [1, 0, 2]}.
    gold = models.JSONField(null=True, blank=True)
    is_gold = models.BooleanField(default=False)
    response_count = models.PositiveSmallIntegerField(default=0)
    # Live assignments (active, or submitted and not retracted). Never more than the campaign's overlap
    # for regular tasks; gold tasks are shown to every reviewer once.
    slots_taken = models.PositiveIntegerField(default=0)
    judgement_count = models.PositiveIntegerField(default=0)
    # Votes wanted beyond the campaign's overlap, granted by a manager's re-queue
    # (``labeling.services.tasks.task_requeue``): the task takes ``overlap + extra_votes`` live slots.
    extra_votes = models.PositiveIntegerField(default=0, db_default=0)
    # Kept by the judgement service with the judgements they summarise (for the task browser's
    # filters and sorting, which a computation over every judgement on each page could not serve
    # fast): the share of judgements that gave the most common answer to the comparative question
    # (None below two judgements, or without such a question), the judgements that flagged a
    # response, and the reviewers who skipped the task.
    agreement = models.FloatField(null=True, blank=True)
    flag_count = models.PositiveIntegerField(default=0, db_default=0)
    skip_count = models.PositiveIntegerField(default=0, db_default=0)
    # Characters of the prompt's text, kept by the database itself (imports write tasks with COPY
    # and multi-row INSERTs), for the task browser's prompt length filter and sort.
    prompt_chars = models.GeneratedField(
        expression=Length(PromptText("prompt")), output_field=models.IntegerField(), db_persist=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "external_id"], condition=~Q(external_id=""), name="task_external_id_per_campaign"
            ),
        ]
        indexes = [
            # The assignment query walks this in order: open tasks of a campaign, fullest first,
            # where fullness counts the votes a re-queue added as still to come. The expression
            # is the one the claim's SQL writes, so the claim seeks straight to the open tasks.
            models.Index(
                F("campaign"),
                F("is_gold"),
                OrderBy(F("slots_taken") - F("extra_votes"), descending=True),
                F("id"),
                condition=Q(response_count__gte=2),
                name="task_claim_room",
            ),
            # The task browser's sorted pages.
            models.Index(fields=["campaign", "judgement_count", "id"], name="task_browse_judgements"),
            models.Index(fields=["campaign", "agreement", "id"], name="task_browse_agreement"),
            models.Index(fields=["campaign", "prompt_chars", "id"], name="task_browse_prompt"),
            # Small: only the tasks that have it.
            models.Index(fields=["campaign", "id"], condition=Q(flag_count__gt=0), name="task_browse_flagged"),
            models.Index(fields=["campaign", "id"], condition=Q(skip_count__gt=0), name="task_browse_skipped"),
            models.Index(fields=["campaign", "id"], condition=Q(is_gold=True), name="task_browse_gold"),
        ]

    def __str__(self) -> str:
        return self.external_id or f"task {self.pk}"


class Response(models.Model):
    # Looked up through the (task, position) constraint's index; one of its own would only cost writes.
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="responses", db_index=False)
    position = models.PositiveSmallIntegerField(help_text="Order in the import; never shown to reviewers.")
    text = models.TextField()
    model_name = models.CharField(max_length=200, blank=True)
    meta = models.JSONField(default=dict, blank=True)
    # The text as safe HTML, rendered once after the import (labeling.services.prerender) rather
    # than each time a reviewer is handed the task; used only while ``rendered_with`` is the
    # current RENDERER_VERSION (0: not rendered yet).
    html = models.TextField(blank=True, default="", db_default="", editable=False)
    rendered_with = models.PositiveSmallIntegerField(default=0, db_default=0, editable=False)

    class Meta:
        ordering = ["task_id", "position"]
        constraints = [models.UniqueConstraint(fields=["task", "position"], name="response_position_per_task")]
        indexes = [
            # The responses still to render: only those stay in this index.
            models.Index(fields=["id"], condition=Q(rendered_with__lt=RENDERER_VERSION), name="response_to_render"),
        ]

    def __str__(self) -> str:
        return f"response {self.pk} of task {self.task_id}"


class AssignmentState(models.TextChoices):
    ACTIVE = "active", "Active"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class Assignment(models.Model):
    # Both looked up through the composite indexes below, which lead with them: indexes of their
    # own would only cost every claim and submit more writes.
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    state = models.CharField(max_length=10, choices=AssignmentState.choices, default=AssignmentState.ACTIVE)
    # Response ids in the order this reviewer saw them, left/top first.
    shown_order = models.JSONField()
    assigned_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-assigned_at"]
        constraints = [models.UniqueConstraint(fields=["task", "reviewer"], name="assignment_once_per_reviewer")]
        indexes = [
            models.Index(fields=["reviewer", "state"], name="assignment_reviewer_state"),
            models.Index(fields=["state", "lease_expires_at"], name="assignment_lease"),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} on {self.task} ({self.state})"


class Judgement(models.Model):
    """A reviewer's answers for one task. Never edited: an undo marks it retracted."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="judgements")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="judgements")
    # Looked up through the (reviewer, ...) indexes below.
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="judgements", db_index=False
    )
    answers = models.JSONField()
    shown_order = models.JSONField()
    time_spent_ms = models.PositiveIntegerField(help_text="Milliseconds from display to submit, as the client saw.")
    client_submission_id = models.CharField(max_length=64)
    submitted_at = models.DateTimeField()
    retracted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-submitted_at"]
        constraints = [
            models.UniqueConstraint(fields=["reviewer", "client_submission_id"], name="judgement_submission_once"),
        ]
        indexes = [models.Index(fields=["reviewer", "submitted_at"], name="judgement_reviewer_time")]

    def __str__(self) -> str:
        return f"judgement {self.pk} by {self.reviewer} on task {self.task_id}"


class PreferenceDataset(models.Model):
    """An immutable snapshot of aggregated preferences, stored as JSONL under ``DATASETS_DIR``.

    Rebuilding from the same judgements with the same parameters gives the same ``content_hash``
    (and the existing snapshot). Raw judgements are never changed by a build.
    """

    class Kind(models.TextChoices):
        PREFERENCE = "preference", "Preference pairs (DPO, reward model)"
        SFT = "sft", "Demonstrations (SFT)"
        KTO = "kto", "Unpaired good/bad (KTO)"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.PREFERENCE)
    campaigns = models.ManyToManyField(Campaign, related_name="datasets")
    method = models.CharField(max_length=20)
    parameters = models.JSONField(help_text="Every build parameter, as used.")
    content_hash = models.CharField(max_length=64, unique=True)
    counts = models.JSONField(help_text="Pairs, prompts, splits, and verdicts dropped per reason.")
    file_name = models.CharField(max_length=100, help_text="The JSONL file under DATASETS_DIR.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.content_hash[:10]})"

    @property
    def path(self) -> Path:
        return Path(settings.DATASETS_DIR) / self.file_name


class DataJob(models.Model):
    """Long data work run by ``manage.py worker`` instead of inside a request: an import or a dataset build.

    An import's upload is stored under ``DATA_JOBS_DIR`` by the request and removed when the job
    ends. While a job runs, its progress lives in a small file (``progress_path``), not in this row:
    an import holds SQLite's write lock for its whole transaction, so a row updated meanwhile would
    stay invisible (or wait) until the end. The row gets the final figures when the job ends.
    """

    class Kind(models.TextChoices):
        IMPORT = "import", "Import"
        DATASET_BUILD = "dataset_build", "Dataset build"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    campaign = models.ForeignKey(
        Campaign,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="data_jobs",
        help_text="Imports only (empty once the campaign is deleted).",
    )
    # An import's input: the stored upload, its format, its name as uploaded, and its size in bytes.
    file_path = models.CharField(max_length=1000, blank=True)
    file_format = models.CharField(max_length=10, blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    file_size = models.BigIntegerField(default=0)
    # A build's input: campaign ids, name, parameters (BuildParams.to_json) and the flagged-reviewer choice.
    parameters = models.JSONField(default=dict, blank=True)
    # Progress as of the job's end (the progress file has it while running): bytes for imports, phases for builds.
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    rows_done = models.BigIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True, help_text="Import counts, or the build's dataset and counts.")
    dataset = models.ForeignKey(PreferenceDataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.TextField(blank=True, help_text="Why it failed, fit to show as it is.")
    errors = models.JSONField(default=dict, blank=True, help_text='Field or line errors: {"line N": reason}.')
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker that holds it.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"], name="datajob_queue")]

    def __str__(self) -> str:
        return f"{self.get_kind_display().lower()} job {self.pk}"

    @property
    def progress_path(self) -> Path:
        return Path(settings.DATA_JOBS_DIR) / f"progress-{self.pk}.json"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)
