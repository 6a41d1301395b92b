"""REST API of the training app: the model registry, rounds, runs and generation jobs. Managers only.

One view per operation, thin: parse, call one service or selector, render. Services raise
``TrainingError`` for anything a user can get wrong; the project's handler turns it into
``{"detail", "errors"}`` with a 4xx status.
"""

from __future__ import annotations

import typing
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.api import CampaignSerializer
from labeling.models import Campaign, PreferenceDataset, Project
from rlhf_platform.openapi import ErrorSerializer
from rlhf_platform.pagination import NewestFirstCursorPagination, paginated_response
from rlhf_platform.permissions import IsManager
from training import selectors
from training.comparisons import variant_table
from training.engine.spec import AdapterMethod
from training.models import Comparison, GenerationJob, JobStatus, ModelArtifact, Round, Stage, Sweep, TrainingRun
from training.services import comparisons as comparison_services
from training.services import generation as generation_services
from training.services import rounds as round_services
from training.services import sweeps as sweep_services
from training.services.registry import model_register

# --- serializers -------------------------------------------------------------------------------


def _status_field(values: list[str]) -> serializers.CharField:
    # Plain strings in the schema: an enum named "status" would collide with the labeling app's.
    return serializers.CharField(read_only=True, help_text=f"One of: {', '.join(values)}.")


ERRORS = {400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


class ModelArtifactSerializer(serializers.ModelSerializer):
    kind = _status_field(ModelArtifact.Kind.values)

    class Meta:
        model = ModelArtifact
        fields = [
            "id", "name", "kind", "path", "gguf_file", "base_model", "size_bytes", "parameter_count",
            "trainable_parameter_count", "produced_by", "dataset", "evaluation", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer):
    """A run as lists show it: status, progress, headline metrics."""

    progress = serializers.FloatField(source="progress_fraction", allow_null=True)
    status = _status_field(JobStatus.values)

    class Meta:
        model = TrainingRun
        fields = [
            "id", "round", "position", "depends_on", "stage", "status", "params", "input_model", "reward_model",
            "dataset", "text_dataset", "step", "total_steps", "progress", "epoch", "tokens_seen", "eta_s",
            "latest_metrics", "final_metrics", "checkpoints", "output_model", "cancel_requested", "resume_from",
            "error", "worker", "heartbeat_at", "auto_resumes", "launched_by", "created_at", "started_at",
            "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    """A run with its engine spec, log tail and metric series (``{train|eval: {name: [[step, value]]}}``)."""

    metric_series = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "spec", "workdir", "log_tail", "metric_series"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_metric_series(self, run: TrainingRun) -> dict[str, dict[str, list[list[float]]]]:
        return selectors.run_metric_series(run=run)


class RoundSerializer(serializers.ModelSerializer):
    status = _status_field(Round.Status.values)

    class Meta:
        model = Round
        fields = [
            "id", "name", "preset", "status", "base_model", "dataset", "pretrain_dataset", "reward_model",
            "stage_settings", "failure_reason", "launched_by", "created_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class RoundDetailSerializer(RoundSerializer):
    runs = serializers.SerializerMethodField()
    verdict = serializers.SerializerMethodField(
        help_text="The evaluate stage's report once it succeeded: summary (verdict, headline, reason, warnings), "
        "figures (base → new with 95% intervals), example answers. Null before."
    )

    class Meta(RoundSerializer.Meta):
        fields = [*RoundSerializer.Meta.fields, "evaluation_corpus", "runs", "verdict"]
        read_only_fields = fields

    @extend_schema_field(RunSerializer(many=True))
    def get_runs(self, round_: Round) -> list[dict]:
        return RunSerializer(selectors.round_runs(round_=round_), many=True).data

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_verdict(self, round_: Round) -> dict | None:
        return selectors.round_verdict(round_=round_)


class GenerationJobSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(source="progress_fraction", allow_null=True)
    status = _status_field(JobStatus.values)

    class Meta:
        model = GenerationJob
        fields = [
            "id", "status", "model", "compare_with", "source_campaign", "params", "campaign_name", "campaign",
            "step", "total_steps", "progress", "eta_s", "result", "cancel_requested", "error", "log_tail",
            "worker", "heartbeat_at", "auto_resumes", "launched_by", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class StageSettingsSerializer(serializers.Serializer):
    """Hyperparameters of a stage; ``advanced`` takes any other engine spec field (training/engine/spec.py)."""

    adapter = serializers.ChoiceField(choices=list(typing.get_args(AdapterMethod)), required=False)
    learning_rate = serializers.FloatField(required=False, min_value=0)
    max_steps = serializers.IntegerField(required=False, help_text="-1 runs `epochs` epochs")
    epochs = serializers.FloatField(required=False)
    batch_size = serializers.IntegerField(required=False, min_value=1)
    gradient_accumulation_steps = serializers.IntegerField(required=False, min_value=1)
    max_length = serializers.IntegerField(required=False, min_value=1)
    logging_steps = serializers.IntegerField(required=False, min_value=1)
    save_steps = serializers.IntegerField(required=False, min_value=1)
    seed = serializers.IntegerField(required=False)
    beta = serializers.FloatField(required=False, help_text="DPO, KTO, RLOO and GRPO")
    kl_coef = serializers.FloatField(required=False, help_text="PPO only")
    response_length = serializers.IntegerField(required=False, help_text="PPO only")
    text_field = serializers.CharField(required=False, help_text="pretrain only")
    advanced = serializers.DictField(required=False, default=dict)


# --- models --------------------------------------------------------------------------------------


class ModelListCreateApi(APIView):
    permission_classes = [IsManager]
    pagination_class = NewestFirstCursorPagination

    class InputSerializer(serializers.Serializer):
        path = serializers.CharField(
            help_text="Model directory, or a .gguf file, on the server: an absolute path inside VAR_DIR/models "
            "or a MODEL_ROOTS directory."
        )
        name = serializers.CharField(max_length=200)
        gguf_file = serializers.CharField(required=False, default="", allow_blank=True)
        kind = serializers.CharField(
            required=False,
            allow_null=True,
            help_text="causal_lm, reward_model or adapter; default: detected.",
        )
        base_model = serializers.PrimaryKeyRelatedField(
            queryset=ModelArtifact.objects.all(), required=False, allow_null=True
        )

    @extend_schema(responses=ModelArtifactSerializer(many=True), tags=["training"])
    def get(self, request: Request) -> Response:
        return paginated_response(
            view=self,
            request=request,
            items=selectors.model_list(),
            serialize=lambda page: ModelArtifactSerializer(page, many=True).data,
        )

    @extend_schema(request=InputSerializer, responses={201: ModelArtifactSerializer, **ERRORS}, tags=["training"])
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        artifact = model_register(created_by=request.user, **data.validated_data)
        return Response(ModelArtifactSerializer(artifact).data, status=status.HTTP_201_CREATED)


class ModelDetailApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(responses=ModelArtifactSerializer, tags=["training"])
    def get(self, request: Request, model_id: int) -> Response:
        return Response(ModelArtifactSerializer(selectors.model_get(model_id=model_id)).data)


# --- rounds --------------------------------------------------------------------------------------


class RoundListLaunchApi(APIView):
    permission_classes = [IsManager]
    pagination_class = NewestFirstCursorPagination

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
        preset = serializers.ChoiceField(choices=Round.Preset.choices)
        stage = serializers.ChoiceField(choices=Stage.choices, required=False, help_text="For the single preset.")
        base_model = serializers.PrimaryKeyRelatedField(queryset=ModelArtifact.objects.all())
        dataset = serializers.PrimaryKeyRelatedField(
            queryset=PreferenceDataset.objects.all(), required=False, allow_null=True
        )
        pretrain_dataset = serializers.CharField(
            required=False,
            default="",
            allow_blank=True,
            help_text="For pretrain: a .txt file or directory, JSONL, Parquet or saved HF dataset on the server, "
            "inside VAR_DIR/data or a DATA_ROOTS directory.",
        )
        reward_model = serializers.PrimaryKeyRelatedField(
            queryset=ModelArtifact.objects.all(),
            required=False,
            allow_null=True,
            help_text="When the round trains none: PPO, RLOO and GRPO train against it, evaluation judges win rates "
            "with it.",
        )
        evaluate = serializers.BooleanField(
            default=True, help_text="End with an evaluate stage: the new model against the base, with a verdict."
        )
        evaluation_corpus = serializers.CharField(
            required=False,
            default="",
            allow_blank=True,
            help_text="Text to measure forgetting on, inside VAR_DIR/data or a DATA_ROOTS directory.",
        )
        settings = StageSettingsSerializer(required=False, help_text="Shared by every stage.")
        stage_settings = serializers.DictField(
            child=StageSettingsSerializer(), required=False, help_text="Per stage name, over `settings`."
        )

        def validate_preset(self, preset: str) -> str:
            if preset == Round.Preset.EVALUATION:
                raise serializers.ValidationError("An evaluation on its own is launched at evaluations/.")
            return preset

    @extend_schema(responses=RoundSerializer(many=True), tags=["training"])
    def get(self, request: Request) -> Response:
        return paginated_response(
            view=self,
            request=request,
            items=selectors.round_list(),
            serialize=lambda page: RoundSerializer(page, many=True).data,
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: RoundDetailSerializer, **ERRORS},
        description="Check and queue a round. Nothing is queued when a check fails.",
        tags=["training"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        round_ = round_services.round_launch(launched_by=request.user, **data.validated_data)
        return Response(RoundDetailSerializer(round_).data, status=status.HTTP_201_CREATED)


class EvaluationLaunchApi(APIView):
    """Evaluate a registered model, alone or against another one: a round of one evaluate stage."""

    permission_classes = [IsManager]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
        model = serializers.PrimaryKeyRelatedField(queryset=ModelArtifact.objects.all())
        compare_with = serializers.PrimaryKeyRelatedField(
            queryset=ModelArtifact.objects.all(),
            required=False,
            allow_null=True,
            help_text="The baseline policy: every figure is taken on both, with the change and its interval.",
        )
        dataset = serializers.PrimaryKeyRelatedField(
            queryset=PreferenceDataset.objects.all(),
            required=False,
            allow_null=True,
            help_text="Its test split (all of its rows when it holds none out and the model did not train on it).",
        )
        evaluation_corpus = serializers.CharField(
            required=False,
            default="",
            allow_blank=True,
            help_text="Text to measure perplexity on, inside VAR_DIR/data or a DATA_ROOTS directory.",
        )
        reward_model = serializers.PrimaryKeyRelatedField(
            queryset=ModelArtifact.objects.all(), required=False, allow_null=True, help_text="Judges the answers."
        )
        settings = serializers.DictField(
            required=False,
            default=dict,
            help_text='The evaluate stage\'s settings, e.g. {"advanced": {"benchmarks": ["arc_easy"], '
            '"benchmark_limit": 50, "max_new_tokens": 128}}.',
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: RoundDetailSerializer, **ERRORS},
        description="Check and queue an evaluation. Nothing is queued when a check fails.",
        tags=["training"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        round_ = round_services.round_launch_evaluation(launched_by=request.user, **data.validated_data)
        return Response(RoundDetailSerializer(round_).data, status=status.HTTP_201_CREATED)


class RoundDetailApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(responses=RoundDetailSerializer, tags=["training"])
    def get(self, request: Request, round_id: int) -> Response:
        return Response(RoundDetailSerializer(selectors.round_get(round_id=round_id)).data)


class RoundCancelApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(request=None, responses={200: RoundDetailSerializer, **ERRORS}, tags=["training"])
    def post(self, request: Request, round_id: int) -> Response:
        round_ = round_services.round_cancel(round_=selectors.round_get(round_id=round_id), actor=request.user)
        return Response(RoundDetailSerializer(round_).data)


# --- runs ----------------------------------------------------------------------------------------


class RunListApi(APIView):
    permission_classes = [IsManager]
    pagination_class = NewestFirstCursorPagination

    class FilterSerializer(serializers.Serializer):
        """Checked like a body: an unknown value is a field error (not an empty list), and text the
        database cannot compare (a NUL character, which PostgreSQL refuses) never reaches it."""

        status = serializers.ChoiceField(choices=JobStatus.choices, required=False, allow_blank=True)
        stage = serializers.ChoiceField(choices=Stage.choices, required=False, allow_blank=True)

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: RunSerializer(many=True), 400: ErrorSerializer},
        tags=["training"],
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        runs = selectors.run_list(**filters.validated_data)
        return paginated_response(
            view=self, request=request, items=runs, serialize=lambda page: RunSerializer(page, many=True).data
        )


class RunDetailApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(responses=RunDetailSerializer, tags=["training"])
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RunDetailSerializer(selectors.run_get(run_id=run_id)).data)


class RunCancelApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(
        request=None,
        responses={200: RunSerializer, **ERRORS},
        description="A running run is asked to stop (it checkpoints first); others stop at once.",
        tags=["training"],
    )
    def post(self, request: Request, run_id: int) -> Response:
        run = round_services.run_cancel(run=selectors.run_get(run_id=run_id), actor=request.user)
        return Response(RunSerializer(run).data)


class RunResumeApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(
        request=None,
        responses={200: RunSerializer, **ERRORS},
        description="Queue an interrupted, cancelled or failed run again, from its last checkpoint.",
        tags=["training"],
    )
    def post(self, request: Request, run_id: int) -> Response:
        run = round_services.run_resume(run=selectors.run_get(run_id=run_id), actor=request.user)
        return Response(RunSerializer(run).data)


# --- generation jobs -----------------------------------------------------------------------------


class GenerationJobListCreateApi(APIView):
    permission_classes = [IsManager]
    pagination_class = NewestFirstCursorPagination

    class InputSerializer(serializers.Serializer):
        model = serializers.PrimaryKeyRelatedField(queryset=ModelArtifact.objects.all())
        compare_with = serializers.PrimaryKeyRelatedField(
            queryset=ModelArtifact.objects.all(), required=False, allow_null=True,
            help_text="The previous policy: tasks pair both models' answers for a blind A/B review.",
        )  # fmt: skip
        campaign_name = serializers.CharField(max_length=200)
        project = serializers.PrimaryKeyRelatedField(
            queryset=Project.objects.all(), required=False, allow_null=True, help_text="Default: the source's."
        )
        source_campaign = serializers.PrimaryKeyRelatedField(
            queryset=Campaign.objects.all(), required=False, allow_null=True, help_text="Take its tasks' prompts."
        )
        prompts = serializers.ListField(
            child=serializers.JSONField(), required=False, default=list,
            help_text="Prompts: text, a message list, or {id, prompt, meta}.",
        )  # fmt: skip
        params = serializers.DictField(
            required=False, default=dict, help_text="num_candidates, temperature, top_p, max_new_tokens, seed."
        )

    @extend_schema(responses=GenerationJobSerializer(many=True), tags=["training"])
    def get(self, request: Request) -> Response:
        return paginated_response(
            view=self,
            request=request,
            items=selectors.generation_job_list(),
            serialize=lambda page: GenerationJobSerializer(page, many=True).data,
        )

    @extend_schema(request=InputSerializer, responses={201: GenerationJobSerializer, **ERRORS}, tags=["training"])
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = generation_services.generation_job_create(launched_by=request.user, **data.validated_data)
        return Response(GenerationJobSerializer(job).data, status=status.HTTP_201_CREATED)


class GenerationJobDetailApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(responses=GenerationJobSerializer, tags=["training"])
    def get(self, request: Request, job_id: int) -> Response:
        return Response(GenerationJobSerializer(selectors.generation_job_get(job_id=job_id)).data)


class GenerationJobCancelApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(request=None, responses={200: GenerationJobSerializer, **ERRORS}, tags=["training"])
    def post(self, request: Request, job_id: int) -> Response:
        job = generation_services.generation_job_cancel(
            job=selectors.generation_job_get(job_id=job_id), actor=request.user
        )
        return Response(GenerationJobSerializer(job).data)


class GenerationJobResumeApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(request=None, responses={200: GenerationJobSerializer, **ERRORS}, tags=["training"])
    def post(self, request: Request, job_id: int) -> Response:
        job = generation_services.generation_job_resume(
            job=selectors.generation_job_get(job_id=job_id), actor=request.user
        )
        return Response(GenerationJobSerializer(job).data)


# --- A/B reviews -----------------------------------------------------------------------------------


class ABResultSerializer(serializers.Serializer):
    """A new model's win rate against an old one in blind A/B reviews (``training.selectors.ABResult``)."""

    new_model = serializers.DictField(help_text="{id, name}")
    old_model = serializers.DictField(help_text="{id, name}")
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()
    both_bad = serializers.IntegerField(help_text="Verdicts that both answers are bad: counted, not in the rate.")
    n = serializers.IntegerField(help_text="Verdicts in the rate: wins, losses and ties.")
    n_judgements = serializers.IntegerField()
    win_rate = serializers.FloatField(allow_null=True, help_text="The new model's, ties counting half.")
    low = serializers.FloatField(allow_null=True, help_text="Wilson interval, lower bound.")
    high = serializers.FloatField(allow_null=True)
    confidence = serializers.FloatField()
    verdict = serializers.CharField(help_text="better, worse, no clear change, or no judgements yet.")
    campaigns = serializers.ListField(child=serializers.DictField(), help_text="{id, slug, name, status}")


class GenerationJobStartReviewApi(APIView):
    """Start the campaign a job made, in one step, set up like the campaign its prompts came from."""

    permission_classes = [IsManager]

    class InputSerializer(serializers.Serializer):
        reviewers = serializers.ListField(
            child=serializers.CharField(),
            required=False,
            help_text="Usernames of the reviewer pool; default: the source campaign's pool.",
        )

    @extend_schema(
        request=InputSerializer,
        responses={200: CampaignSerializer, **ERRORS},
        description=(
            "Copies the source campaign's reviewer pool (unless `reviewers` is given), guidelines, overlap, lease "
            "and the gold tasks that fit, with its gold rate, and makes the campaign active. 409 when the job has "
            "no campaign yet or it has already started."
        ),
        tags=["training"],
    )
    def post(self, request: Request, job_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = generation_services.generation_campaign_start(
            job=selectors.generation_job_get(job_id=job_id),
            reviewers=data.validated_data.get("reviewers"),
            actor=request.user,
        )
        return Response(CampaignSerializer(campaign).data)


class GenerationJobABResultApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(
        responses={200: ABResultSerializer, 404: ErrorSerializer},
        description="The new model's win rate against `compare_with` in the job's A/B campaign, as judgements arrive.",
        tags=["training"],
    )
    def get(self, request: Request, job_id: int) -> Response:
        result = selectors.ab_result_for_job(job=selectors.generation_job_get(job_id=job_id))
        if result is None:
            raise NotFound("This job compares no models: it was run without compare_with.")
        return Response(ABResultSerializer(result.as_dict()).data)


class ModelABResultsApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(
        responses={200: ABResultSerializer(many=True), 404: ErrorSerializer},
        description="The model's A/B results, one per model it was paired with, its newest pairings first.",
        tags=["training"],
    )
    def get(self, request: Request, model_id: int) -> Response:
        results = selectors.ab_results_for_model(model=selectors.model_get(model_id=model_id))
        return Response(ABResultSerializer([result.as_dict() for result in results], many=True).data)


class MistakeSliceSerializer(serializers.Serializer):
    dimension = serializers.CharField(help_text="campaign, meta, prompt_length or agreement.")
    key = serializers.CharField(help_text="The meta key (empty for the other dimensions).")
    value = serializers.CharField(help_text="The slice's value: a campaign id, a meta value, a length bucket, a level.")
    label = serializers.CharField(help_text="The value for people (a campaign's name, a percentage).")
    count = serializers.IntegerField()
    score = serializers.FloatField(help_text="Accuracy (reward model) or win rate against the base (policy).")
    interval = serializers.ListField(child=serializers.FloatField(), help_text="95% Wilson interval of the score.")
    much_worse = serializers.BooleanField(
        help_text="At least 10 items, and the whole interval below the overall score."
    )


class ModelMistakesSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="reward (held-out pairs) or policy (held-out prompts against its base).")
    run = serializers.IntegerField(allow_null=True, help_text="The evaluation run the outcomes come from.")
    message = serializers.CharField(help_text="Why there is nothing to slice (empty when there is).")
    count = serializers.IntegerField()
    score = serializers.FloatField(allow_null=True)
    interval = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    slices = MistakeSliceSerializer(many=True, help_text="Worst first.")
    meta_keys_left_out = serializers.DictField(
        child=serializers.IntegerField(), help_text="Meta keys with too many values to slice by -> their count."
    )


class ModelMistakesApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(
        responses={200: ModelMistakesSerializer, 404: ErrorSerializer},
        description="The model's latest evaluation sliced by campaign, meta value, prompt length and human "
        "agreement: score, count and 95% interval per slice, worst first, much worse slices flagged. A model "
        "without per-item outcomes (never evaluated, or evaluated before they were kept) answers with a message.",
        tags=["training"],
    )
    def get(self, request: Request, model_id: int) -> Response:
        found = selectors.model_mistakes(model=selectors.model_get(model_id=model_id))
        report = found.report
        body = {
            "kind": found.kind,
            "run": found.run.pk if found.run is not None else None,
            "message": found.message,
            "count": report.count if report else 0,
            "score": report.score if report else None,
            "interval": list(report.interval) if report else None,
            "slices": [item.as_dict() for item in report.slices] if report else [],
            "meta_keys_left_out": report.meta_keys_left_out if report else {},
        }
        return Response(ModelMistakesSerializer(body).data)


# --- comparisons and runs side by side --------------------------------------------------------------


class ComparisonSerializer(serializers.ModelSerializer):
    kind = _status_field(Comparison.Kind.values)
    rounds = serializers.SerializerMethodField(help_text="{variant: round id}")

    class Meta:
        model = Comparison
        fields = [
            "id", "name", "kind", "stage", "adapter", "variants", "base_model", "dataset", "reward_model", "seed",
            "max_steps", "epochs", "stage_settings", "rounds", "launched_by", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_rounds(self, comparison: Comparison) -> dict[str, int]:
        return {round_.variant: round_.pk for round_ in comparison.rounds.all()}


class ComparisonDetailSerializer(ComparisonSerializer):
    """A comparison with its table: the columns, and one row per variant with the same values as its page."""

    columns = serializers.SerializerMethodField()
    rows = serializers.SerializerMethodField()

    class Meta(ComparisonSerializer.Meta):
        fields = [*ComparisonSerializer.Meta.fields, "columns", "rows"]
        read_only_fields = fields

    def _table(self, comparison: Comparison) -> dict[str, Any]:
        if not hasattr(self, "_cached_table"):
            self._cached_table = variant_table(selectors.comparison_variants(comparison=comparison))
        return self._cached_table

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_columns(self, comparison: Comparison) -> list[dict[str, Any]]:
        """``{key, label, unit, better, group}``: ``key`` is the final metric's name, or ``evaluate.<figure>``."""
        return [
            {"key": c.key, "label": c.label, "unit": c.unit, "better": c.better, "group": c.group}
            for c in self._table(comparison)["columns"]
        ]

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_rows(self, comparison: Comparison) -> list[dict[str, Any]]:
        """``{variant, status, round, run, evaluate_run, values: {key: value or null}, best: [keys]}``."""
        table = self._table(comparison)
        keys = [column.key for column in table["columns"]]
        return [
            {
                "variant": row["variant"],
                "status": row["status"],
                "round": row["round_id"],
                "run": row["run_id"] or None,
                "evaluate_run": row["evaluate_run"].pk if row["evaluate_run"] else None,
                "values": {key: cell["value"] for key, cell in zip(keys, row["cells"], strict=True)},
                "best": [key for key, cell in zip(keys, row["cells"], strict=True) if cell["best"]],
            }
            for row in table["rows"]
        ]


class ComparisonListLaunchApi(APIView):
    permission_classes = [IsManager]
    pagination_class = NewestFirstCursorPagination

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
        kind = serializers.ChoiceField(choices=Comparison.Kind.choices)
        variants = serializers.ListField(
            child=serializers.CharField(max_length=40),
            max_length=comparison_services.MAX_VARIANTS * 2,
            help_text="Adapter methods (kind adapters) or alignment stages (kind alignment), as the engine names them.",
        )
        stage = serializers.CharField(required=False, allow_null=True, default=None, help_text="Kind adapters.")
        adapter = serializers.CharField(required=False, allow_null=True, default=None, help_text="Kind alignment.")
        base_model = serializers.PrimaryKeyRelatedField(queryset=ModelArtifact.objects.all())
        dataset = serializers.PrimaryKeyRelatedField(queryset=PreferenceDataset.objects.all())
        reward_model = serializers.PrimaryKeyRelatedField(
            queryset=ModelArtifact.objects.all(), required=False, allow_null=True
        )
        seed = serializers.IntegerField(required=False, default=42)
        max_steps = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
        epochs = serializers.FloatField(required=False, allow_null=True, default=None)
        settings = StageSettingsSerializer(required=False, help_text="Shared by every variant (not seed or budget).")
        stage_settings = serializers.DictField(child=StageSettingsSerializer(), required=False)
        evaluate = serializers.BooleanField(default=True)

    @extend_schema(responses=ComparisonSerializer(many=True), tags=["training"])
    def get(self, request: Request) -> Response:
        return paginated_response(
            view=self,
            request=request,
            items=selectors.comparison_list(),
            serialize=lambda page: ComparisonSerializer(page, many=True).data,
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: ComparisonDetailSerializer, **ERRORS},
        description="Check and queue one round per variant, with the same seed and budget. Nothing is queued "
        "when a variant is refused; the error names it.",
        tags=["training"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        comparison = comparison_services.comparison_launch(launched_by=request.user, **data.validated_data)
        comparison = selectors.comparison_get(comparison_id=comparison.pk)
        return Response(ComparisonDetailSerializer(comparison).data, status=status.HTTP_201_CREATED)


class ComparisonDetailApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(responses=ComparisonDetailSerializer, tags=["training"])
    def get(self, request: Request, comparison_id: int) -> Response:
        return Response(ComparisonDetailSerializer(selectors.comparison_get(comparison_id=comparison_id)).data)


class RunsCompareApi(APIView):
    """Runs side by side: their specs as rows (one value per run) and their metric series."""

    permission_classes = [IsManager]

    class QuerySerializer(serializers.Serializer):
        run = serializers.ListField(child=serializers.IntegerField(min_value=1), help_text="2 to 8 run ids.")

    @extend_schema(
        parameters=[OpenApiParameter("run", int, many=True, explode=True, description="A run id; 2 to 8 of them.")],
        responses={200: OpenApiTypes.OBJECT, 400: ErrorSerializer},
        description="`rows`: `{field, values (one per run), differs, per_run}`, flattened spec fields "
        "(`adapter.method`) after the runs' stage, status, round, snapshot and input model; `series`: "
        "per run, `{train|eval: {name: [[step, value]]}}`.",
        tags=["training"],
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data={"run": request.query_params.getlist("run")})
        query.is_valid(raise_exception=True)
        runs = selectors.runs_side_by_side(run_ids=query.validated_data["run"])
        rows = selectors.runs_spec_rows(runs=runs)
        return Response(
            {
                "runs": [
                    {"id": run.pk, "stage": run.stage, "status": run.status, "round": run.round_id} for run in runs
                ],
                "rows": rows,
                "series": [{"run": run.pk, "metric_series": selectors.run_metric_series(run=run)} for run in runs],
            }
        )


# --- sweeps --------------------------------------------------------------------------------------


class SweepParameterSerializer(serializers.Serializer):
    """One searched parameter: a range (float, int) or a list of choices (categorical)."""

    name = serializers.CharField(help_text="A spec field: learning_rate, beta, adapter.r, adapter.alpha, epochs, ...")
    type = serializers.ChoiceField(choices=["float", "int", "categorical"], default="float")
    low = serializers.JSONField(required=False)
    high = serializers.JSONField(required=False)
    log = serializers.BooleanField(required=False, default=False, help_text="Sample on a log scale (low > 0).")
    choices = serializers.ListField(child=serializers.JSONField(), required=False)


class SweepTrialSerializer(serializers.Serializer):
    """A trial as the sweep ranks it: its round, parameters, state and value."""

    rank = serializers.IntegerField(allow_null=True, help_text="1 is the best; null unless the trial completed.")
    number = serializers.IntegerField(source="trial_number")
    round = serializers.IntegerField(source="pk")
    state = serializers.CharField(source="trial_state", help_text="running, complete, pruned or failed.")
    status = serializers.CharField(help_text="The round's status.")
    params = serializers.JSONField(source="trial_params")
    value = serializers.FloatField(source="trial_value", allow_null=True)
    note = serializers.CharField(source="trial_note", help_text="Why it was pruned or failed.")
    model = serializers.SerializerMethodField(help_text="The model the trial trained, once it has one.")

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_model(self, trial: Round) -> int | None:
        model = selectors.sweep_trial_model(trial=trial)
        return model.pk if model is not None else None


class SweepSerializer(serializers.ModelSerializer):
    status = _status_field(Sweep.Status.values)
    trial_count = serializers.IntegerField(read_only=True, help_text="Trials asked so far.")

    class Meta:
        model = Sweep
        fields = [
            "id", "name", "stage", "dataset", "base_model", "reward_model", "search_space", "fixed_settings",
            "n_trials", "parallel", "metric", "direction", "pruner", "prune_on", "seed", "status",
            "failure_reason", "trial_count", "best_trial", "promoted_model", "promoted_at", "launched_by",
            "created_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class SweepDetailSerializer(SweepSerializer):
    trials = serializers.SerializerMethodField()

    class Meta(SweepSerializer.Meta):
        fields = [*SweepSerializer.Meta.fields, "trials"]
        read_only_fields = fields

    @extend_schema_field(SweepTrialSerializer(many=True))
    def get_trials(self, sweep: Sweep) -> list[dict]:
        return SweepTrialSerializer(selectors.sweep_trials(sweep=sweep), many=True).data


class SweepListLaunchApi(APIView):
    permission_classes = [IsManager]
    pagination_class = NewestFirstCursorPagination

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
        stage = serializers.ChoiceField(
            choices=Stage.choices, help_text="The stage to tune: one that trains on a snapshot (not pretrain)."
        )
        dataset = serializers.PrimaryKeyRelatedField(queryset=PreferenceDataset.objects.all())
        base_model = serializers.PrimaryKeyRelatedField(queryset=ModelArtifact.objects.all())
        reward_model = serializers.PrimaryKeyRelatedField(
            queryset=ModelArtifact.objects.all(), required=False, allow_null=True, help_text="For PPO."
        )
        search_space = SweepParameterSerializer(many=True, allow_empty=False)
        n_trials = serializers.IntegerField(min_value=1, max_value=sweep_services.MAX_TRIALS)
        parallel = serializers.IntegerField(min_value=1, default=1, help_text="Trials queued at once.")
        metric = serializers.ChoiceField(
            choices=list(sweep_services.METRICS), help_text="The evaluate stage's figure, or a final loss."
        )
        direction = serializers.ChoiceField(
            choices=Sweep.Direction.choices, required=False, allow_null=True, help_text="Default: the metric's."
        )
        pruner = serializers.ChoiceField(choices=Sweep.Pruner.choices, default=Sweep.Pruner.NONE)
        prune_on = serializers.ChoiceField(
            choices=list(sweep_services.PRUNE_ON),
            default="loss",
            help_text="loss: at each logging step; eval_loss: at each eval_steps (set advanced.eval_steps).",
        )
        seed = serializers.IntegerField(default=0)
        settings = StageSettingsSerializer(required=False, help_text="Fixed settings of every trial.")
        stage_settings = serializers.DictField(child=StageSettingsSerializer(), required=False)

        def validate_search_space(self, rows: list[dict]) -> list[dict]:
            # Left out, not null: the service's checks name a missing bound.
            return [{key: value for key, value in row.items() if value is not None} for row in rows]

    @extend_schema(responses=SweepSerializer(many=True), tags=["training"])
    def get(self, request: Request) -> Response:
        return paginated_response(
            view=self,
            request=request,
            items=selectors.sweep_list(),
            serialize=lambda page: SweepSerializer(page, many=True).data,
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: SweepDetailSerializer, **ERRORS},
        description="Check a sweep and queue its first trials. Nothing is queued when a check fails.",
        tags=["training"],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sweep = sweep_services.sweep_launch(launched_by=request.user, **data.validated_data)
        return Response(
            SweepDetailSerializer(selectors.sweep_get(sweep_id=sweep.pk)).data, status=status.HTTP_201_CREATED
        )


class SweepDetailApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(responses=SweepDetailSerializer, tags=["training"])
    def get(self, request: Request, sweep_id: int) -> Response:
        return Response(SweepDetailSerializer(selectors.sweep_get(sweep_id=sweep_id)).data)


class SweepCancelApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(request=None, responses={200: SweepDetailSerializer, **ERRORS}, tags=["training"])
    def post(self, request: Request, sweep_id: int) -> Response:
        sweep = sweep_services.sweep_cancel(sweep=selectors.sweep_get(sweep_id=sweep_id), actor=request.user)
        return Response(SweepDetailSerializer(selectors.sweep_get(sweep_id=sweep.pk)).data)


class SweepPromoteApi(APIView):
    permission_classes = [IsManager]

    @extend_schema(
        request=None,
        responses={200: SweepDetailSerializer, **ERRORS},
        description="Promote the best trial's model (409 while the sweep runs, or when no trial completed).",
        tags=["training"],
    )
    def post(self, request: Request, sweep_id: int) -> Response:
        sweep = sweep_services.sweep_promote(sweep=selectors.sweep_get(sweep_id=sweep_id), actor=request.user)
        return Response(SweepDetailSerializer(selectors.sweep_get(sweep_id=sweep.pk)).data)
