from django.urls import path

from training import views

app_name = "training"

urlpatterns = [
    path("training/", views.training_home, name="home"),
    path("training/rounds/new/", views.round_launch_page, name="round-launch"),
    path("training/rounds/<id:round_id>/", views.round_detail, name="round-detail"),
    path("training/rounds/<id:round_id>/live/", views.round_live, name="round-live"),
    path("training/rounds/<id:round_id>/ab/", views.round_ab_live, name="round-ab"),
    path("training/rounds/<id:round_id>/cancel/", views.round_cancel_page, name="round-cancel"),
    path("training/comparisons/", views.comparison_list_page, name="comparisons"),
    path("training/comparisons/new/", views.comparison_launch_page, name="comparison-launch"),
    path("training/comparisons/<id:comparison_id>/", views.comparison_detail, name="comparison-detail"),
    path("training/comparisons/<id:comparison_id>/live/", views.comparison_live, name="comparison-live"),
    path("training/runs/compare/", views.runs_compare_page, name="runs-compare"),
    path("training/runs/<id:run_id>/", views.run_detail, name="run-detail"),
    path("training/runs/<id:run_id>/live/", views.run_live, name="run-live"),
    path("training/runs/<id:run_id>/cancel/", views.run_cancel_page, name="run-cancel"),
    path("training/runs/<id:run_id>/resume/", views.run_resume_page, name="run-resume"),
    path("training/models/", views.models_page, name="models"),
    path("training/models/<id:model_id>/", views.model_detail, name="model-detail"),
    path("training/models/<id:model_id>/ab/", views.model_ab_live, name="model-ab"),
    path("training/models/<id:model_id>/evaluate/", views.model_evaluate_page, name="model-evaluate"),
    path("training/models/<id:model_id>/mistakes/", views.model_mistakes_page, name="model-mistakes"),
    path("training/generate/", views.generate_page, name="generate"),
    path("training/generation/<id:job_id>/", views.generation_job_detail, name="generation-job"),
    path("training/generation/<id:job_id>/live/", views.generation_job_live, name="generation-job-live"),
    path(
        "training/generation/<id:job_id>/start-review/",
        views.generation_campaign_start_page,
        name="generation-job-start",
    ),
    path("training/sweeps/", views.sweep_list_page, name="sweeps"),
    path("training/sweeps/new/", views.sweep_launch_page, name="sweep-launch"),
    path("training/sweeps/<id:sweep_id>/", views.sweep_detail, name="sweep-detail"),
    path("training/sweeps/<id:sweep_id>/live/", views.sweep_live, name="sweep-live"),
    path("training/sweeps/<id:sweep_id>/cancel/", views.sweep_cancel_page, name="sweep-cancel"),
    path("training/sweeps/<id:sweep_id>/promote/", views.sweep_promote_page, name="sweep-promote"),
]
