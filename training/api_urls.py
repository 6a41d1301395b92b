from django.urls import path

from training import api

urlpatterns = [
    path("models/", api.ModelListCreateApi.as_view(), name="api-training-models"),
    path("models/<id:model_id>/", api.ModelDetailApi.as_view(), name="api-training-model"),
    path("models/<id:model_id>/ab-results/", api.ModelABResultsApi.as_view(), name="api-training-model-ab-results"),
    path("models/<id:model_id>/mistakes/", api.ModelMistakesApi.as_view(), name="api-training-model-mistakes"),
    path("rounds/", api.RoundListLaunchApi.as_view(), name="api-training-rounds"),
    path("rounds/<id:round_id>/", api.RoundDetailApi.as_view(), name="api-training-round"),
    path("evaluations/", api.EvaluationLaunchApi.as_view(), name="api-training-evaluations"),
    path("rounds/<id:round_id>/cancel/", api.RoundCancelApi.as_view(), name="api-training-round-cancel"),
    path("comparisons/", api.ComparisonListLaunchApi.as_view(), name="api-training-comparisons"),
    path("comparisons/<id:comparison_id>/", api.ComparisonDetailApi.as_view(), name="api-training-comparison"),
    path("runs/compare/", api.RunsCompareApi.as_view(), name="api-training-runs-compare"),
    path("runs/", api.RunListApi.as_view(), name="api-training-runs"),
    path("runs/<id:run_id>/", api.RunDetailApi.as_view(), name="api-training-run"),
    path("runs/<id:run_id>/cancel/", api.RunCancelApi.as_view(), name="api-training-run-cancel"),
    path("runs/<id:run_id>/resume/", api.RunResumeApi.as_view(), name="api-training-run-resume"),
    path("generation-jobs/", api.GenerationJobListCreateApi.as_view(), name="api-training-generation-jobs"),
    path("generation-jobs/<id:job_id>/", api.GenerationJobDetailApi.as_view(), name="api-training-generation-job"),
    path(
        "generation-jobs/<id:job_id>/cancel/",
        api.GenerationJobCancelApi.as_view(),
        name="api-training-generation-job-cancel",
    ),
    path(
        "generation-jobs/<id:job_id>/resume/",
        api.GenerationJobResumeApi.as_view(),
        name="api-training-generation-job-resume",
    ),
    path(
        "generation-jobs/<id:job_id>/start-review/",
        api.GenerationJobStartReviewApi.as_view(),
        name="api-training-generation-job-start-review",
    ),
    path(
        "generation-jobs/<id:job_id>/ab-result/",
        api.GenerationJobABResultApi.as_view(),
        name="api-training-generation-job-ab-result",
    ),
    path("sweeps/", api.SweepListLaunchApi.as_view(), name="api-training-sweeps"),
    path("sweeps/<id:sweep_id>/", api.SweepDetailApi.as_view(), name="api-training-sweep"),
    path("sweeps/<id:sweep_id>/cancel/", api.SweepCancelApi.as_view(), name="api-training-sweep-cancel"),
    path("sweeps/<id:sweep_id>/promote/", api.SweepPromoteApi.as_view(), name="api-training-sweep-promote"),
]
