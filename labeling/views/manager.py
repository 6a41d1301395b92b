"""Manager pages: projects, campaigns, imports and reviewer pools."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labeling import selectors
from labeling.charts import hour_chart, line_chart, scatter_chart, win_rate_heatmap
from labeling.errors import LabelingError, NotFound
from labeling.forms import SCHEMA_PRESETS, CampaignForm, DatasetBuildForm, ProjectForm, TaskFilterForm
from labeling.models import Campaign, CampaignStatus, DataJob, PreferenceDataset, Project
from labeling.rendering import render_markdown
from labeling.services.campaigns import (
    STATUS_TRANSITIONS,
    campaign_add_team,
    campaign_create,
    campaign_set_reviewers,
    campaign_set_status,
    campaign_update,
    project_create,
)
from labeling.services.data_jobs import dataset_build_job_create, import_job_create
from labeling.services.datasets import dataset_params
from labeling.services.imports import ImportRejected, format_from_name, max_import_bytes
from labeling.services.tasks import MAX_REQUEUE_VOTES, task_requeue
from rlhf_platform.pagination import list_page
from rlhf_platform.permissions import manager_required

# Tasks per page of the task browser.
TASK_PAGE_SIZE = 50
# The browser's sortable columns (``selectors.tasks_browse`` sort keys).
TASK_COLUMNS = ("id", "judgements", "agreement", "flags", "skips", "prompt_length")

# What the status buttons say, by the status they move to.
STATUS_ACTIONS = {
    CampaignStatus.ACTIVE: "Start",
    CampaignStatus.PAUSED: "Pause",
    CampaignStatus.CLOSED: "Close",
}


@manager_required
def manager_dashboard(request: HttpRequest) -> HttpResponse:
    projects = list_page(request, Project.objects.order_by("name", "id"), per_page=20)
    context = {
        "team": selectors.team_counts(),
        "projects": projects,
        "overview": selectors.projects_overview(projects=projects),
    }
    return render(request, "labeling/manager/dashboard.html", context)


@manager_required
@require_http_methods(["GET", "POST"])
def project_create_page(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = project_create(created_by=request.user, **form.cleaned_data)
        except LabelingError as error:
            for field, text in error.errors.items():
                form.add_error(field if field in form.fields else None, text)
        else:
            messages.success(request, f"Project “{project.name}” created.")
            return redirect(f"{reverse('labeling:campaign-create')}?project={project.pk}")
    status = 400 if form.is_bound else 200
    return render(request, "labeling/manager/project_form.html", {"form": form}, status=status)


@manager_required
@require_http_methods(["GET", "POST"])
def campaign_create_page(request: HttpRequest) -> HttpResponse:
    form = CampaignForm(request.POST or None, initial={"project": request.GET.get("project")})
    if _wants_save(request) and form.is_valid():
        try:
            campaign = campaign_create(
                project=form.cleaned_data["project"], created_by=request.user, **form.campaign_fields()
            )
        except LabelingError as error:
            form.add_service_errors(error.errors, error.message)
        else:
            messages.success(request, f"Campaign “{campaign.name}” created. Import tasks to start it.")
            return redirect("labeling:campaign-import", slug=campaign.slug)
    return _campaign_form(request, form, campaign=None, questions_fixed=False)


@manager_required
@require_http_methods(["GET", "POST"])
def campaign_edit_page(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = get_object_or_404(Campaign.objects.select_related("project"), slug=slug)
    questions_fixed = selectors.campaign_has_judgements(campaign=campaign)
    form = CampaignForm(request.POST or None, campaign=campaign, questions_fixed=questions_fixed)
    if _wants_save(request) and form.is_valid():
        try:
            campaign = campaign_update(campaign=campaign, actor=request.user, **form.campaign_fields())
        except LabelingError as error:
            form.add_service_errors(error.errors, error.message)
        else:
            messages.success(request, "Campaign saved.")
            return redirect("labeling:campaign-detail", slug=campaign.slug)
    return _campaign_form(request, form, campaign=campaign, questions_fixed=questions_fixed)


def _wants_save(request: HttpRequest) -> bool:
    # The "Preview guidelines" button posts the form to see it rendered, without saving.
    return request.method == "POST" and "preview" not in request.POST


def _campaign_form(
    request: HttpRequest, form: CampaignForm, *, campaign: Campaign | None, questions_fixed: bool
) -> HttpResponse:
    guidelines = form["guidelines"].value() or ""
    context = {
        "form": form,
        "campaign": campaign,
        "questions_fixed": questions_fixed,
        "presets": SCHEMA_PRESETS,
        "guidelines_html": render_markdown(guidelines) if guidelines.strip() else "",
    }
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "labeling/manager/campaign_form.html", context, status=status)


@manager_required
def campaign_detail(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = get_object_or_404(Campaign.objects.select_related("project"), slug=slug)
    stats = selectors.campaign_stats(campaign=campaign)
    context = {
        "campaign": campaign,
        "stats": stats,
        "done": stats["judgements_done"],
        "percent": stats["percent"],
        "chart": hour_chart(stats["per_hour"]),
        "actions": _status_actions(campaign.status),
        "guidelines_html": render_markdown(campaign.guidelines),
    }
    return render(request, "labeling/manager/campaign_detail.html", context)


def _status_actions(current: str) -> list[dict[str, str]]:
    """The buttons for the transitions the campaign's status allows, in the order of the statuses."""
    allowed = STATUS_TRANSITIONS[CampaignStatus(current)]
    labels = {**STATUS_ACTIONS, CampaignStatus.ACTIVE: "Resume" if current == CampaignStatus.PAUSED else "Start"}
    return [{"status": status.value, "label": labels[status]} for status in CampaignStatus if status in allowed]


@manager_required
@require_POST
def campaign_status(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = get_object_or_404(Campaign, slug=slug)
    try:
        campaign = campaign_set_status(campaign=campaign, status=request.POST.get("status", ""), actor=request.user)
    except LabelingError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The campaign is {campaign.get_status_display().lower()}.")
    return redirect("labeling:campaign-detail", slug=campaign.slug)


@manager_required
@require_http_methods(["GET", "POST"])
def campaign_import(request: HttpRequest, slug: str) -> HttpResponse:
    """Upload a file and queue its import; the script follows the job, the plain form goes to its page."""
    campaign = get_object_or_404(Campaign.objects.select_related("project"), slug=slug)
    wants_json = request.get_preferred_type(["text/html", "application/json"]) == "application/json"
    context: dict[str, Any] = {"campaign": campaign, "max_mib": max_import_bytes() // 2**20}
    status = 200
    if request.method == "POST":
        upload = request.FILES.get("file")
        try:
            if upload is None:
                raise ImportRejected("Choose a file to import.")
            job = import_job_create(
                campaign=campaign, upload=upload, file_format=format_from_name(upload.name), created_by=request.user
            )
        except ImportRejected as error:
            if wants_json:  # the API's error shape: {"detail", "errors"}
                return JsonResponse({"detail": error.message, "errors": error.errors}, status=400)
            context["rejected"] = error.message
            status = 400
        else:
            if wants_json:
                return _job_accepted(job)
            return redirect("labeling:data-job", job_id=job.pk)
    context["jobs"] = selectors.data_jobs_recent(campaign=campaign, kind=DataJob.Kind.IMPORT)
    return render(request, "labeling/manager/campaign_import.html", context, status=status)


def _job_accepted(job: DataJob) -> JsonResponse:
    """What the import page's script gets: the job's API address to follow, and its page."""
    url = reverse("api-data-job", kwargs={"job_id": job.pk})
    body = {"id": job.pk, "status": job.status, "url": url, "page": reverse("labeling:data-job", args=[job.pk])}
    response = JsonResponse(body, status=202)
    response["Location"] = url
    return response


@manager_required
def data_job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _data_job_or_404(job_id)
    campaign = job.campaign if job.campaign_id else None
    recent = selectors.data_jobs_recent(kind=job.kind, campaign=campaign, limit=10, besides=job)
    context = {**_data_job_context(job), "recent": recent}
    return render(request, "labeling/manager/data_job.html", context)


@manager_required
def data_job_live(request: HttpRequest, job_id: int) -> HttpResponse:
    """The part of the job page that changes, polled by the page (training/static/training/poll.js)."""
    return render(request, "labeling/manager/_data_job_live.html", _data_job_context(_data_job_or_404(job_id)))


def _data_job_or_404(job_id: int) -> DataJob:
    try:
        return selectors.data_job_get(job_id=job_id)
    except NotFound:
        raise Http404("No such job.") from None


def _data_job_context(job: DataJob) -> dict[str, Any]:
    row_errors = [
        {"line": where.removeprefix("line "), "reason": reason}
        for where, reason in job.errors.items()
        if where.startswith("line ")
    ]
    field_errors = {where: reason for where, reason in job.errors.items() if not where.startswith("line ")}
    return {
        "job": job,
        "progress": selectors.data_job_progress(job=job),
        "row_errors": row_errors,
        "field_errors": field_errors,
        "poll_seconds": 1,
    }


@manager_required
@require_http_methods(["GET", "POST"])
def campaign_reviewers(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = get_object_or_404(Campaign.objects.select_related("project"), slug=slug)
    if request.method == "POST":
        try:
            usernames = campaign_set_reviewers(
                campaign=campaign, usernames=request.POST.getlist("reviewers"), actor=request.user
            )
        except LabelingError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Pool saved: {len(usernames)} reviewer{'s' if len(usernames) != 1 else ''}.")
        return redirect("labeling:campaign-reviewers", slug=campaign.slug)
    context = {
        "campaign": campaign,
        "choices": selectors.reviewer_pool_choices(campaign=campaign),
        "teams": selectors.pool_team_choices(campaign=campaign),
    }
    return render(request, "labeling/manager/campaign_reviewers.html", context)


@manager_required
@require_POST
def campaign_reviewers_add_team(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = get_object_or_404(Campaign, slug=slug)
    team_id = request.POST.get("team", "")
    try:
        if not team_id.isdigit():
            raise LabelingError("Choose a team.", {"team": "Choose a team from the list."})
        added = campaign_add_team(campaign=campaign, team_id=int(team_id), actor=request.user)
    except LabelingError as error:
        messages.error(request, error.message)
    else:
        if added:
            messages.success(
                request, f"Added {len(added)} reviewer{'s' if len(added) != 1 else ''}: {', '.join(added)}."
            )
        else:
            messages.success(request, "Nobody added: the team's reviewers are all in the pool already.")
    return redirect("labeling:campaign-reviewers", slug=campaign.slug)


@manager_required
@require_http_methods(["GET", "POST"])
def datasets_page(request: HttpRequest) -> HttpResponse:
    form = DatasetBuildForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        fields = dict(form.cleaned_data)
        campaigns, name = list(fields.pop("campaigns")), fields.pop("name")
        exclude_flagged = fields.pop("exclude_flagged_reviewers")
        try:
            job = dataset_build_job_create(
                campaigns=campaigns,
                params=dataset_params(**fields),
                created_by=request.user,
                name=name,
                exclude_flagged_reviewers=exclude_flagged,
            )
        except LabelingError as error:
            form.add_error(None, error.message)
            for field, text in error.errors.items():
                if field in form.fields:
                    form.add_error(field, text)
        else:
            return redirect("labeling:data-job", job_id=job.pk)
    context = {
        "form": form,
        "datasets": list_page(request, selectors.datasets_overview()),
        "jobs": selectors.data_jobs_recent(kind=DataJob.Kind.DATASET_BUILD),
    }
    return render(request, "labeling/manager/datasets.html", context, status=400 if form.errors else 200)


@manager_required
def dataset_detail(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_object_or_404(PreferenceDataset.objects.prefetch_related("campaigns"), pk=dataset_id)
    return render(
        request,
        "labeling/manager/dataset_detail.html",
        {"dataset": dataset, "preview": selectors.dataset_preview(dataset=dataset)},
    )


@manager_required
def campaign_quality(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = get_object_or_404(Campaign.objects.select_related("project"), slug=slug)
    quality = selectors.campaign_quality(campaign=campaign)
    over_time = line_chart([(str(point["period"].date()), point["outcome_alpha"]) for point in quality.over_time])
    scatter = scatter_chart(
        [
            {
                "x": row["agreement_with_consensus"],
                "y": row["gold_accuracy"],
                "label": row["reviewer"],
                "flagged": row["flagged"],
            }
            for row in quality.reviewers
            if row["agreement_with_consensus"] is not None and row["gold_accuracy"] is not None
        ]
    )
    context = {"campaign": campaign, "quality": quality, "over_time": over_time, "scatter": scatter}
    return render(request, "labeling/manager/campaign_quality.html", context)


@manager_required
def project_leaderboard(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_object_or_404(Project, slug=slug)
    board = selectors.project_leaderboard(project=project)
    context = {
        "project": project,
        "board": board,
        "heatmap": win_rate_heatmap(board.models, board.head_to_head),
        "confidence_percent": round(100 * board.confidence),
    }
    return render(request, "labeling/manager/leaderboard.html", context)


# --- the task browser ----------------------------------------------------------------------


@manager_required
@require_GET
def campaign_tasks(request: HttpRequest, slug: str) -> HttpResponse:
    """The campaign's tasks, filtered, sorted and paged by the query string; bad input answers 400 with its errors."""
    campaign = get_object_or_404(Campaign.objects.select_related("project"), slug=slug)
    form = TaskFilterForm(request.GET)
    context: dict[str, Any] = {"campaign": campaign, "form": form, "page": None}
    status = 200
    if form.is_valid():
        try:
            context["page"] = selectors.tasks_page(
                campaign=campaign,
                filters=form.filters(),
                page=form.cleaned_data["page"] or 1,
                page_size=form.cleaned_data["page_size"] or TASK_PAGE_SIZE,
            )
        except LabelingError as error:
            for field, text in error.errors.items():
                form.add_error(field, text)
    if form.errors:
        status = 400
    elif context["page"] is not None:
        context.update(_page_links(request, context["page"]))
    return render(request, "labeling/manager/campaign_tasks.html", context, status=status)


def _page_links(request: HttpRequest, page: selectors.TaskPage) -> dict[str, Any]:
    """Query strings of the neighbouring pages and of each sort, keeping the other filters."""

    def query(**changes: Any) -> str:
        params = request.GET.copy()
        for key, value in changes.items():
            params[key] = str(value)
        return params.urlencode()

    current = request.GET.get("sort") or "id"
    # A column's link sorts by it, ascending first, and flips the direction when it is the sort already.
    sorts = {key: query(sort=f"-{key}" if current == key else key, page=1) for key in TASK_COLUMNS}
    return {
        "previous_query": query(page=page.number - 1) if page.number > 1 else None,
        "next_query": query(page=page.number + 1) if page.number < page.pages else None,
        "query": request.GET.urlencode(),
        "sorts": sorts,
        "sort": current,
    }


@manager_required
@require_GET
def campaign_task(request: HttpRequest, slug: str, task_id: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign.objects.select_related("project"), slug=slug)
    try:
        detail = selectors.task_detail(campaign=campaign, task_id=task_id)
    except NotFound:
        raise Http404("No such task in this campaign.") from None
    back = request.GET.get("back", "")
    context = {
        "campaign": campaign,
        "detail": detail,
        "task": detail.task,
        # The browser's query to go back to; only a query string, never another address.
        "back": back if not back.startswith(("/", "http", "\\")) and "//" not in back else "",
        "max_votes": MAX_REQUEUE_VOTES,
    }
    return render(request, "labeling/manager/campaign_task.html", context)


@manager_required
@require_POST
def campaign_task_requeue(request: HttpRequest, slug: str, task_id: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, slug=slug)
    raw = request.POST.get("votes", "").strip()
    try:
        votes: Any = int(raw)
    except ValueError:
        votes = raw
    try:
        task = task_requeue(task_id=task_id, campaign=campaign, votes=votes, actor=request.user)
    except NotFound:
        raise Http404("No such task in this campaign.") from None
    except LabelingError as error:
        messages.error(request, error.message)
    else:
        wanted = campaign.overlap + task.extra_votes
        messages.success(request, f"Re-queued: the task now takes up to {wanted} votes ({votes} more).")
    url = reverse("labeling:campaign-task", args=[campaign.slug, task_id])
    back = request.POST.get("back", "")
    return redirect(f"{url}?{urlencode({'back': back})}" if back else url)
