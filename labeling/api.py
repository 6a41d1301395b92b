"""REST API of the labeling app: one view per operation, thin, over services and selectors.

Managers may do everything; reviewers only their own work in campaigns whose pool
they belong to. A campaign a reviewer is not in answers 404, as if it did not exist.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.http import FileResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import selectors
from labeling.datasets import EXPORT_FORMATS, KINDS, METHODS, TIE_POLICIES
from labeling.errors import LabelingError
from labeling.forms import TaskFilterForm
from labeling.models import Campaign, CampaignStatus, DataJob, PreferenceDataset, Project
from labeling.rendering import render_markdown
from labeling.selectors import campaign_for_reviewer
from labeling.services import campaigns as campaign_services
from labeling.services.assignment import assignment_claim_next, assignment_skip
from labeling.services.data_jobs import dataset_build_job_create, import_job_create
from labeling.services.datasets import dataset_download_file, dataset_params
from labeling.services.imports import FORMATS, format_from_name
from labeling.services.judgements import judgement_submit, judgement_submit_and_claim_next, judgement_undo_last
from labeling.services.tasks import MAX_REQUEUE_VOTES, task_requeue
from rlhf_platform.openapi import ErrorSerializer
from rlhf_platform.pagination import PAGE_SIZE, NewestFirstCursorPagination, PagePagination, paginated_response
from rlhf_platform.permissions import IsManager, IsReviewer
from rlhf_platform.roles import user_is_manager

# --- serializers shared by several views ---------------------------------------------------


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "slug", "description", "created_at"]
        read_only_fields = ["id", "created_at"]


class CampaignSerializer(serializers.ModelSerializer):
    """A campaign as managers see it."""

    reviewers = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)

    class Meta:
        model = Campaign
        fields = [
            "id", "project", "name", "slug", "status", "question_schema", "guidelines",
            "overlap", "lease_seconds", "gold_rate", "reviewers", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class ReviewerCampaignSerializer(serializers.Serializer):
    """A campaign as its reviewers see it: what to answer and how, nothing about others."""

    id = serializers.IntegerField()
    slug = serializers.SlugField()
    name = serializers.CharField()
    question_schema = serializers.JSONField()
    guidelines_html = serializers.CharField()


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    html = serializers.CharField(help_text="Sanitized HTML rendered from Markdown.")


class ShownResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Answers refer to responses by this id.")
    html = serializers.CharField(help_text="Sanitized HTML rendered from Markdown.")
    text = serializers.CharField(help_text="The raw text, as a starting point for a rewrite.")


class AssignmentPayloadSerializer(serializers.Serializer):
    assignment_id = serializers.IntegerField()
    lease_expires_at = serializers.DateTimeField()
    prompt = MessageSerializer(many=True)
    responses = ShownResponseSerializer(many=True, help_text="In the order to show them, left/top first.")
    previous_answers = serializers.JSONField(allow_null=True, help_text="Answers given before an undo.")


def _reviewer_campaign(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.pk,
        "slug": campaign.slug,
        "name": campaign.name,
        "question_schema": campaign.question_schema,
        "guidelines_html": render_markdown(campaign.guidelines),
    }


def _campaign_for_manager(campaign_id: int) -> Campaign:
    return get_object_or_404(Campaign.objects.prefetch_related("reviewers"), pk=campaign_id)


ERRORS = {400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


# --- data jobs: imports and dataset builds run by the worker ---------------------------------


def _plain_choice(values: list[str]) -> serializers.CharField:
    # Plain strings in the schema: an enum named "status" or "kind" would collide with others.
    return serializers.CharField(read_only=True, help_text=f"One of: {', '.join(values)}.")


class DataJobProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField(help_text="Bytes of the file read (import), or phases done (build).")
    total = serializers.IntegerField(help_text="The file's size in bytes (import), or the number of phases (build).")
    rows = serializers.IntegerField(help_text="Rows checked so far (import).")
    phase = serializers.CharField(help_text="The build's phase: read, aggregate or write; empty otherwise.")
    percent = serializers.FloatField()


class DataJobSerializer(serializers.ModelSerializer):
    """An import or a dataset build, as the worker runs it."""

    kind = _plain_choice(DataJob.Kind.values)
    status = _plain_choice(DataJob.Status.values)
    url = serializers.SerializerMethodField(help_text="This job in the API.")
    page = serializers.SerializerMethodField(help_text="This job's page.")
    progress = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    detail = serializers.CharField(source="error", read_only=True, help_text="Why it failed; empty otherwise.")
    errors = serializers.DictField(
        child=serializers.CharField(), read_only=True, help_text="Field errors, or 'line N' -> reason for an import."
    )
    result = serializers.DictField(
        read_only=True,
        help_text=(
            "Import: created, skipped_duplicates, prompt_only, rows. Build: dataset (id), created "
            "(false when the same snapshot existed), counts."
        ),
    )

    class Meta:
        model = DataJob
        fields = [
            "id", "kind", "status", "url", "page", "campaign", "file_name", "file_size", "parameters", "progress",
            "result", "dataset", "detail", "errors", "created_by", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_url(self, job: DataJob) -> str:
        return reverse("api-data-job", kwargs={"job_id": job.pk})

    def get_page(self, job: DataJob) -> str:
        return reverse("labeling:data-job", kwargs={"job_id": job.pk})

    @extend_schema_field(DataJobProgressSerializer)
    def get_progress(self, job: DataJob) -> dict[str, Any]:
        progress = selectors.data_job_progress(job=job)
        return {key: progress[key] for key in ("done", "total", "rows", "phase", "percent")}


def _job_accepted(job: DataJob) -> Response:
    body = DataJobSerializer(job).data
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


# --- projects --------------------------------------------------------------------------------


class ProjectListCreateApi(APIView):
    permission_classes = [IsManager]
    pagination_class = PagePagination

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        slug = serializers.SlugField(max_length=90, required=False, default="")
        description = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(responses=ProjectSerializer(many=True), tags=["projects"])
    def get(self, request: Request) -> Response:
        return paginated_response(
            view=self,
            request=request,
            items=Project.objects.order_by("name", "id"),
            serialize=lambda page: ProjectSerializer(page, many=True).data,
        )

    @extend_schema(request=InputSerializer, responses={201: ProjectSerializer, **ERRORS}, tags=["projects"])
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = campaign_services.project_create(created_by=request.user, **data.validated_data)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(responses=ProjectSerializer, tags=["projects"])
    def get(self, request: Request, project_id: int) -> Response:
        return Response(ProjectSerializer(get_object_or_404(Project, pk=project_id)).data)

    class UpdateSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(required=False, allow_blank=True)

    @extend_schema(request=UpdateSerializer, responses={200: ProjectSerializer, **ERRORS}, tags=["projects"])
    def patch(self, request: Request, project_id: int) -> Response:
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = campaign_services.project_update(
            project=get_object_or_404(Project, pk=project_id), actor=request.user, **data.validated_data
        )
        return Response(ProjectSerializer(project).data)

    @extend_schema(responses={204: None, **ERRORS}, tags=["projects"])
    def delete(self, request: Request, project_id: int) -> Response:
        campaign_services.project_delete(project=get_object_or_404(Project, pk=project_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- campaigns -------------------------------------------------------------------------------


class CampaignInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=90, required=False)
    question_schema = serializers.JSONField()
    guidelines = serializers.CharField(required=False, allow_blank=True)
    overlap = serializers.IntegerField(required=False)
    lease_seconds = serializers.IntegerField(required=False)
    gold_rate = serializers.FloatField(required=False)


class CampaignListCreateApi(APIView):
    pagination_class = PagePagination

    class CreateSerializer(CampaignInputSerializer):
        project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.all())

    @extend_schema(
        responses=CampaignSerializer(many=True),
        description="Managers see every campaign; reviewers see the active campaigns they belong to, "
        "in the reviewer form (questions and guidelines only).",
        tags=["campaigns"],
    )
    def get(self, request: Request) -> Response:
        if user_is_manager(request.user):
            campaigns = Campaign.objects.prefetch_related("reviewers").order_by("name", "id")
            serialize = lambda page: CampaignSerializer(page, many=True).data  # noqa: E731
        else:
            campaigns = selectors.campaigns_for_reviewer(reviewer=request.user)
            serialize = lambda page: [_reviewer_campaign(campaign) for campaign in page]  # noqa: E731
        return paginated_response(view=self, request=request, items=campaigns, serialize=serialize)

    @extend_schema(request=CreateSerializer, responses={201: CampaignSerializer, **ERRORS}, tags=["campaigns"])
    def post(self, request: Request) -> Response:
        if not user_is_manager(request.user):
            self.permission_denied(request, message=IsManager.message)
        data = self.CreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        campaign = campaign_services.campaign_create(project=fields.pop("project"), created_by=request.user, **fields)
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)


class CampaignDetailApi(APIView):
    class UpdateSerializer(CampaignInputSerializer):
        name = serializers.CharField(max_length=200, required=False)
        question_schema = serializers.JSONField(required=False)

    @extend_schema(responses={200: CampaignSerializer, 404: ErrorSerializer}, tags=["campaigns"])
    def get(self, request: Request, campaign_id: int) -> Response:
        if user_is_manager(request.user):
            return Response(CampaignSerializer(_campaign_for_manager(campaign_id)).data)
        campaign = campaign_for_reviewer(reviewer=request.user, campaign_id=campaign_id)
        return Response(_reviewer_campaign(campaign))

    @extend_schema(request=UpdateSerializer, responses={200: CampaignSerializer, **ERRORS}, tags=["campaigns"])
    def patch(self, request: Request, campaign_id: int) -> Response:
        if not user_is_manager(request.user):
            self.permission_denied(request, message=IsManager.message)
        data = self.UpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        campaign = campaign_services.campaign_update(
            campaign=_campaign_for_manager(campaign_id), actor=request.user, **data.validated_data
        )
        return Response(CampaignSerializer(campaign).data)

    @extend_schema(responses={204: None, **ERRORS}, tags=["campaigns"])
    def delete(self, request: Request, campaign_id: int) -> Response:
        if not user_is_manager(request.user):
            self.permission_denied(request, message=IsManager.message)
        campaign_services.campaign_delete(campaign=_campaign_for_manager(campaign_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CampaignStatusApi(APIView):
    permission_classes = [IsManager]

    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=CampaignStatus.choices)

    @extend_schema(request=InputSerializer, responses={200: CampaignSerializer, **ERRORS}, tags=["campaigns"])
    def post(self, request: Request, campaign_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = campaign_services.campaign_set_status(
            campaign=_campaign_for_manager(campaign_id), status=data.validated_data["status"], actor=request.user
        )
        return Response(CampaignSerializer(campaign).data)


class CampaignReviewersApi(APIView):
    permission_classes = [IsManager]

    class InputSerializer(serializers.Serializer):
        reviewers = serializers.ListField(child=serializers.CharField(), allow_empty=True)

    @extend_schema(request=InputSerializer, responses={200: InputSerializer, **ERRORS}, tags=["campaigns"])
    def put(self, request: Request, campaign_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        usernames = campaign_services.campaign_set_reviewers(
            campaign=_campaign_for_manager(campaign_id), usernames=data.validated_data["reviewers"], actor=request.user
        )
        return Response({"reviewers": usernames})


class CampaignReviewersAddTeamApi(APIView):
    permission_classes = [IsManager]

    class InputSerializer(serializers.Serializer):
        team = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="The team's id (/api/teams/).")

    class OutputSerializer(serializers.Serializer):
        added = serializers.ListField(child=serializers.CharField(), help_text="Usernames added now.")
        reviewers = serializers.ListField(child=serializers.CharField(), help_text="The whole pool.")

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **ERRORS},
        description="Add the team's current active reviewers to the pool (a snapshot: who joins the team later "
        "is not added).",
        tags=["campaigns"],
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = _campaign_for_manager(campaign_id)
        added = campaign_services.campaign_add_team(
            campaign=campaign, team_id=data.validated_data["team"], actor=request.user
        )
        reviewers = sorted(campaign.reviewers.values_list("username", flat=True))
        return Response({"added": added, "reviewers": reviewers})


class CampaignImportApi(APIView):
    permission_classes = [IsManager]
    parser_classes = [MultiPartParser]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField()
        format = serializers.ChoiceField(choices=FORMATS, required=False, help_text="Defaults to the extension.")

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={
            202: OpenApiResponse(
                DataJobSerializer,
                description="Queued for the worker; follow the job at `url` (also the Location header).",
            ),
            400: OpenApiResponse(
                ErrorSerializer, description="Refused before queueing: format, size, closed campaign."
            ),
            404: ErrorSerializer,
        },
        description=(
            "Store the file and queue its import; the worker (`manage.py worker`) checks every row and imports "
            "all of them or none. The job's `errors` then map 'line N' to the reason."
        ),
        tags=["campaigns"],
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        job = import_job_create(
            campaign=_campaign_for_manager(campaign_id),
            upload=upload,
            file_format=data.validated_data.get("format") or format_from_name(upload.name),
            created_by=request.user,
        )
        return _job_accepted(job)


class CampaignStatsApi(APIView):
    permission_classes = [IsManager]

    class OutputSerializer(serializers.Serializer):
        tasks = serializers.DictField(child=serializers.IntegerField(), help_text="total, regular, gold, ...")
        judgements = serializers.IntegerField()
        judgements_wanted = serializers.IntegerField()
        judgements_left = serializers.IntegerField()
        active_assignments = serializers.IntegerField()
        per_hour = serializers.ListField(child=serializers.DictField(), help_text="{hour, judgements}, 24 hours")
        reviewers = serializers.ListField(child=serializers.DictField(), help_text="One row per reviewer.")

    @extend_schema(responses={200: OutputSerializer, 404: ErrorSerializer}, tags=["campaigns"])
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(selectors.campaign_stats(campaign=_campaign_for_manager(campaign_id)))


# --- a reviewer's own work -------------------------------------------------------------------


class NextTaskApi(APIView):
    permission_classes = [IsReviewer]

    @extend_schema(
        request=None,
        responses={
            200: AssignmentPayloadSerializer,
            204: OpenApiResponse(description="Nothing left for this reviewer in the campaign."),
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
        description="Hold a new task (one the reviewer does not already hold) for the campaign's lease.",
        tags=["review"],
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_reviewer(reviewer=request.user, campaign_id=campaign_id)
        claim = assignment_claim_next(reviewer=request.user, campaign=campaign)
        if claim is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(selectors.claim_payload(claim))


class HeldTasksApi(APIView):
    permission_classes = [IsReviewer]

    @extend_schema(responses={200: AssignmentPayloadSerializer(many=True), 404: ErrorSerializer}, tags=["review"])
    def get(self, request: Request, campaign_id: int) -> Response:
        """The tasks the reviewer holds now, oldest first (to resume after a reload)."""
        campaign = campaign_for_reviewer(reviewer=request.user, campaign_id=campaign_id)
        held = selectors.active_assignments(reviewer=request.user, campaign=campaign).select_related("task")
        return Response([selectors.assignment_payload(a) for a in held])


class SubmitApi(APIView):
    permission_classes = [IsReviewer]

    class InputSerializer(serializers.Serializer):
        answers = serializers.JSONField(help_text="Keyed by question id; responses named by id.")
        client_submission_id = serializers.CharField(help_text="A fresh id (e.g. a UUID); retries reuse it.")
        time_spent_ms = serializers.IntegerField(min_value=0)
        claim_next = serializers.BooleanField(
            default=False,
            help_text="Also hold the reviewer's next task of the campaign and return it as `next`: "
            "submit and next in one round trip.",
        )

    class OutputSerializer(serializers.Serializer):
        judgement_id = serializers.IntegerField()
        created = serializers.BooleanField(help_text="False when this repeated an earlier submission.")
        next = AssignmentPayloadSerializer(
            required=False,
            allow_null=True,
            help_text="With `claim_next`: the next task, now held. Null when none was claimed (nothing left, "
            "the campaign hands out no tasks now, or this repeated an earlier submission); ask "
            "`next/` to learn why.",
        )

    @extend_schema(
        request=InputSerializer, responses={201: OutputSerializer, 200: OutputSerializer, **ERRORS}, tags=["review"]
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        submission = {"reviewer": request.user, "assignment_id": assignment_id, **data.validated_data}
        if submission.pop("claim_next"):
            outcome, claim = judgement_submit_and_claim_next(**submission)
            body = {"next": selectors.claim_payload(claim) if claim else None}
        else:
            outcome, body = judgement_submit(**submission), {}
        body.update(judgement_id=outcome.judgement.pk, created=outcome.created)
        return Response(body, status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK)


class SkipApi(APIView):
    permission_classes = [IsReviewer]

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=500)

    @extend_schema(request=InputSerializer, responses={204: None, **ERRORS}, tags=["review"])
    def post(self, request: Request, assignment_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment_skip(reviewer=request.user, assignment_id=assignment_id, reason=data.validated_data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class UndoApi(APIView):
    permission_classes = [IsReviewer]

    @extend_schema(request=None, responses={200: AssignmentPayloadSerializer, **ERRORS}, tags=["review"])
    def post(self, request: Request, campaign_id: int) -> Response:
        """Retract the reviewer's last answer in the campaign; the task comes back with that answer filled in."""
        campaign = campaign_for_reviewer(reviewer=request.user, campaign_id=campaign_id)
        assignment = judgement_undo_last(reviewer=request.user, campaign=campaign)
        return Response(selectors.assignment_payload(assignment))


class ProgressApi(APIView):
    permission_classes = [IsReviewer]

    class OutputSerializer(serializers.Serializer):
        done_today = serializers.IntegerField()
        left_in_campaign = serializers.IntegerField()

    @extend_schema(responses={200: OutputSerializer, 404: ErrorSerializer}, tags=["review"])
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_reviewer(reviewer=request.user, campaign_id=campaign_id)
        return Response(selectors.reviewer_progress(reviewer=request.user, campaign=campaign))


# --- preference datasets ---------------------------------------------------------------------


class DataJobListApi(APIView):
    permission_classes = [IsManager]
    pagination_class = NewestFirstCursorPagination

    @extend_schema(responses=DataJobSerializer(many=True), tags=["jobs"])
    def get(self, request: Request) -> Response:
        return paginated_response(
            view=self,
            request=request,
            items=DataJob.objects.select_related("created_by"),
            serialize=lambda page: DataJobSerializer(page, many=True).data,
        )


class DataJobDetailApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(
        responses={200: DataJobSerializer, 404: ErrorSerializer},
        description="Status, progress and outcome of an import or a dataset build; poll it until `status` "
        "is succeeded or failed.",
        tags=["jobs"],
    )
    def get(self, request: Request, job_id: int) -> Response:
        return Response(DataJobSerializer(selectors.data_job_get(job_id=job_id)).data)


class DatasetSerializer(serializers.ModelSerializer):
    campaigns = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = PreferenceDataset
        fields = [
            "id",
            "name",
            "campaigns",
            "method",
            "parameters",
            "content_hash",
            "counts",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class DatasetListCreateApi(APIView):
    permission_classes = [IsManager]
    pagination_class = NewestFirstCursorPagination

    class InputSerializer(serializers.Serializer):
        campaigns = serializers.PrimaryKeyRelatedField(queryset=Campaign.objects.all(), many=True)
        name = serializers.CharField(max_length=200, required=False, default="")
        kind = serializers.ChoiceField(choices=KINDS, default="preference")
        method = serializers.ChoiceField(choices=METHODS, default="bradley_terry")
        min_votes = serializers.IntegerField(default=1)
        min_agreement = serializers.FloatField(default=0.0)
        min_confidence = serializers.FloatField(default=0.5)
        ties = serializers.ChoiceField(choices=TIE_POLICIES, default="drop")
        drop_flagged = serializers.BooleanField(default=True)
        drop_both_bad = serializers.BooleanField(default=True)
        include_gold = serializers.BooleanField(default=False)
        exclude_reviewers = serializers.ListField(child=serializers.IntegerField(), default=list)
        exclude_flagged_reviewers = serializers.BooleanField(
            default=False, help_text="Also leave out the reviewers the quality table flags."
        )
        test_fraction = serializers.FloatField(
            default=0.1, help_text="Share of prompts held out for evaluation (a round's verdict needs some)."
        )
        seed = serializers.IntegerField(default=0)

    @extend_schema(responses=DatasetSerializer(many=True), tags=["datasets"])
    def get(self, request: Request) -> Response:
        return paginated_response(
            view=self,
            request=request,
            items=selectors.datasets_overview(),
            serialize=lambda page: DatasetSerializer(page, many=True).data,
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            202: OpenApiResponse(
                DataJobSerializer,
                description="Queued for the worker; follow the job at `url` (also the Location header).",
            ),
            **ERRORS,
        },
        description=(
            "Queue a snapshot build; the worker (`manage.py worker`) builds it. The finished job names the "
            "`dataset`, and `result.created` is false when the same inputs and parameters gave an existing one."
        ),
        tags=["datasets"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        campaigns, name = fields.pop("campaigns"), fields.pop("name")
        exclude_flagged = fields.pop("exclude_flagged_reviewers")
        params = dataset_params(**{**fields, "exclude_reviewers": tuple(fields["exclude_reviewers"])})
        job = dataset_build_job_create(
            campaigns=campaigns,
            params=params,
            created_by=request.user,
            name=name,
            exclude_flagged_reviewers=exclude_flagged,
        )
        return _job_accepted(job)


class DatasetDetailApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(responses={200: DatasetSerializer, 404: ErrorSerializer}, tags=["datasets"])
    def get(self, request: Request, dataset_id: int) -> Response:
        return Response(DatasetSerializer(get_object_or_404(PreferenceDataset, pk=dataset_id)).data)


class DatasetDownloadApi(APIView):
    permission_classes = [IsManager]

    class QuerySerializer(serializers.Serializer):
        # Not "format": DRF reads that query parameter to pick a renderer.
        file_format = serializers.ChoiceField(choices=EXPORT_FORMATS, default="jsonl", help_text="hf comes zipped.")
        split = serializers.ChoiceField(choices=["train", "test"], required=False)

    @extend_schema(
        parameters=[QuerySerializer],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 400: ErrorSerializer, 404: ErrorSerializer},
        tags=["datasets"],
    )
    def get(self, request: Request, dataset_id: int) -> FileResponse:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        handle, download_name = dataset_download_file(
            dataset=get_object_or_404(PreferenceDataset, pk=dataset_id),
            file_format=query.validated_data["file_format"],
            split=query.validated_data.get("split"),
        )
        return FileResponse(handle, as_attachment=True, filename=download_name)


class CampaignQualityApi(APIView):
    permission_classes = [IsManager]

    class AgreementSerializer(serializers.Serializer):
        measure = serializers.CharField()
        level = serializers.CharField()
        value = serializers.FloatField(allow_null=True)
        n_items = serializers.IntegerField()
        n_votes = serializers.IntegerField()

    class OutputSerializer(serializers.Serializer):
        agreement = serializers.DictField(allow_null=True, help_text="percent, outcome_alpha, strength_alpha")
        ranking = serializers.DictField(allow_null=True)
        likert = serializers.DictField(allow_null=True)
        reviewers = serializers.ListField(child=serializers.DictField(), help_text="One row per reviewer, with flags.")

    @extend_schema(responses={200: OutputSerializer, 404: ErrorSerializer}, tags=["campaigns"])
    def get(self, request: Request, campaign_id: int) -> Response:
        quality = selectors.campaign_quality(campaign=_campaign_for_manager(campaign_id))

        def agreement(result: Any) -> dict[str, Any] | None:
            return None if result is None else self.AgreementSerializer(result).data

        pairwise = quality.agreement
        measures = ("percent", "outcome_alpha", "strength_alpha")
        return Response(
            {
                "agreement": None if pairwise is None else {m: agreement(getattr(pairwise, m)) for m in measures},
                "ranking": agreement(quality.ranking),
                "likert": agreement(quality.likert),
                "reviewers": [
                    {key: value for key, value in row.items() if key != "reviewer_id"} for row in quality.reviewers
                ],
            }
        )


class CampaignJudgementsExportApi(APIView):
    """The raw judgements of a campaign as JSONL, streamed: one row per judgement, reviewers pseudonymous."""

    permission_classes = [IsManager]

    @extend_schema(
        responses={(200, "application/jsonl"): OpenApiTypes.BINARY, 404: ErrorSerializer}, tags=["campaigns"]
    )
    def get(self, request: Request, campaign_id: int) -> StreamingHttpResponse:
        campaign = _campaign_for_manager(campaign_id)
        lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in selectors.raw_judgement_rows(campaign=campaign))
        response = StreamingHttpResponse(lines, content_type="application/jsonl")
        response["Content-Disposition"] = f'attachment; filename="{campaign.slug}-judgements.jsonl"'
        return response


# --- models compared -------------------------------------------------------------------------


class LeaderboardRowSerializer(serializers.Serializer):
    model = serializers.CharField()
    rank = serializers.IntegerField(help_text="1 + the models of its group rated clearly above it.")
    rating = serializers.FloatField(allow_null=True, help_text="Elo-like: 400 points per factor 10 in the odds.")
    rating_low = serializers.FloatField(allow_null=True)
    rating_high = serializers.FloatField(allow_null=True)
    strength = serializers.FloatField(allow_null=True, help_text="Bradley-Terry log-strength, in logits.")
    n_battles = serializers.IntegerField(help_text="Battles, both-bad ones included.")
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()
    both_bad = serializers.IntegerField()
    group = serializers.IntegerField(help_text="Connected part of the comparison graph; 0 is the largest.")


class HeadToHeadSerializer(serializers.Serializer):
    model = serializers.CharField()
    opponent = serializers.CharField()
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()
    both_bad = serializers.IntegerField()
    n = serializers.IntegerField(help_text="Wins, losses and ties.")
    win_rate = serializers.FloatField(allow_null=True, help_text="Of `model` against `opponent`, ties half.")


class ProjectLeaderboardApi(APIView):
    """The project's models ranked by Bradley-Terry rating, with the head-to-head matrix."""

    permission_classes = [IsManager]

    class OutputSerializer(serializers.Serializer):
        project = serializers.IntegerField(source="project.pk")
        battles = serializers.IntegerField(help_text="Comparisons between answers of two different models.")
        groups = serializers.IntegerField(help_text="More than 1: some models were never compared with the others.")
        confidence = serializers.FloatField()
        n_bootstrap = serializers.IntegerField()
        models = LeaderboardRowSerializer(source="rows", many=True, help_text="Best first.")
        head_to_head = HeadToHeadSerializer(many=True)

    @extend_schema(responses={200: OutputSerializer, 404: ErrorSerializer}, tags=["projects"])
    def get(self, request: Request, project_id: int) -> Response:
        board = selectors.project_leaderboard(project=get_object_or_404(Project, pk=project_id))
        return Response(self.OutputSerializer(board).data)


# --- the task browser ------------------------------------------------------------------------


def _form_parameters() -> list[OpenApiParameter]:
    """The task browser's query parameters, from the form that parses them."""
    types = {forms.FloatField: float, forms.IntegerField: int}
    parameters = []
    for name, field in TaskFilterForm.base_fields.items():
        description = str(field.help_text or field.label or name.replace("_", " ").capitalize())
        if isinstance(field, forms.ChoiceField):
            description += " One of: " + ", ".join(value or "(empty: any)" for value, _ in field.choices) + "."
        parameters.append(OpenApiParameter(name, types.get(type(field), str), description=description))
    return parameters


def _filters_from(request: Request) -> TaskFilterForm:
    form = TaskFilterForm(request.query_params)
    if not form.is_valid():
        errors = {field: " ".join(messages) for field, messages in form.errors.items()}
        raise LabelingError("Some filters need fixing: " + ", ".join(errors) + ".", errors)
    return form


class TaskRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    excerpt = serializers.CharField(help_text="The prompt's start, as plain text.")
    is_gold = serializers.BooleanField()
    judgement_count = serializers.IntegerField()
    votes_wanted = serializers.IntegerField(allow_null=True, help_text="Overlap plus re-queued votes; null for gold.")
    agreement = serializers.FloatField(allow_null=True, help_text="Share of judgements giving the most common answer.")
    flag_count = serializers.IntegerField()
    skip_count = serializers.IntegerField()
    prompt_length = serializers.IntegerField(help_text="Characters of the prompt.")
    created_at = serializers.DateTimeField()


class CampaignTasksApi(APIView):
    """A campaign's tasks, filtered, sorted and paged like the task browser page."""

    permission_classes = [IsManager]

    class OutputSerializer(serializers.Serializer):
        count = serializers.IntegerField(help_text="Tasks passing the filters, on every page.")
        page = serializers.IntegerField()
        pages = serializers.IntegerField()
        page_size = serializers.IntegerField()
        results = TaskRowSerializer(many=True)

    @extend_schema(
        operation_id="campaigns_tasks_list",
        parameters=_form_parameters(),
        responses={200: OutputSerializer, **ERRORS},
        tags=["campaigns"],
    )
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        form = _filters_from(request)
        page = selectors.tasks_page(
            campaign=campaign,
            filters=form.filters(),
            page=form.cleaned_data["page"] or 1,
            page_size=form.cleaned_data["page_size"] or PAGE_SIZE,
        )
        body = {"count": page.count, "page": page.number, "pages": page.pages, "page_size": page.page_size}
        return Response(self.OutputSerializer({**body, "results": page.tasks}).data)


class TaskResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Judgements name responses by this id.")
    number = serializers.IntegerField(help_text="1-based position in the import.")
    model_name = serializers.CharField()
    text = serializers.CharField()
    html = serializers.CharField(help_text="Sanitized HTML, as reviewers see it.")


class TaskJudgementSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reviewer = serializers.CharField(help_text="Username.")
    submitted_at = serializers.DateTimeField()
    time_spent_ms = serializers.IntegerField()
    retracted_at = serializers.DateTimeField(allow_null=True)
    shown_order = serializers.ListField(
        source="shown", child=serializers.IntegerField(), help_text="Response numbers, in the order shown."
    )
    answers = serializers.JSONField(help_text="As submitted: responses by id.")
    described = serializers.SerializerMethodField(help_text="Each answer in the question's terms.")

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_described(self, judgement: dict[str, Any]) -> dict[str, str]:
        return {label: text for label, _, text in judgement["described"]}


class CampaignTaskApi(APIView):
    """One task with its prompt, its responses' texts, and every judgement and skip of it."""

    permission_classes = [IsManager]

    class SkipSerializer(serializers.Serializer):
        reviewer = serializers.CharField()
        finished_at = serializers.DateTimeField()
        reason = serializers.CharField()

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(source="task.pk")
        external_id = serializers.CharField(source="task.external_id")
        prompt = serializers.JSONField(source="task.prompt", help_text="A string, or a list of {role, content}.")
        meta = serializers.JSONField(source="task.meta")
        gold = serializers.JSONField(source="task.gold", allow_null=True)
        is_gold = serializers.BooleanField(source="task.is_gold")
        judgement_count = serializers.IntegerField(source="task.judgement_count")
        votes_wanted = serializers.IntegerField(allow_null=True)
        holding = serializers.IntegerField(help_text="Reviewers holding it now.")
        agreement = serializers.FloatField(source="task.agreement", allow_null=True)
        flag_count = serializers.IntegerField(source="task.flag_count")
        skip_count = serializers.IntegerField(source="task.skip_count")
        responses = TaskResponseSerializer(many=True)
        judgements = TaskJudgementSerializer(many=True, help_text="Newest first, retracted ones included.")
        skips = serializers.ListField(child=serializers.DictField())

    @extend_schema(responses={200: OutputSerializer, 404: ErrorSerializer}, tags=["campaigns"])
    def get(self, request: Request, campaign_id: int, task_id: int) -> Response:
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        detail = selectors.task_detail(campaign=campaign, task_id=task_id)
        return Response(self.OutputSerializer(detail).data)


class CampaignTaskRequeueApi(APIView):
    permission_classes = [IsManager]

    class InputSerializer(serializers.Serializer):
        votes = serializers.IntegerField(
            min_value=1, max_value=MAX_REQUEUE_VOTES, help_text="How many more judgements to ask for."
        )

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        judgement_count = serializers.IntegerField()
        extra_votes = serializers.IntegerField(help_text="Votes wanted beyond the campaign's overlap.")
        votes_wanted = serializers.IntegerField()

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **ERRORS},
        description="Serve the task again, to reviewers who have not judged, skipped or held it, until `votes` "
        "more of them answer it.",
        tags=["campaigns"],
    )
    def post(self, request: Request, campaign_id: int, task_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        task = task_requeue(task_id=task_id, campaign=campaign, votes=data.validated_data["votes"], actor=request.user)
        body = {
            "id": task.pk,
            "judgement_count": task.judgement_count,
            "extra_votes": task.extra_votes,
            "votes_wanted": campaign.overlap + task.extra_votes,
        }
        return Response(self.OutputSerializer(body).data)
