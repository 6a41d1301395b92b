from django.urls import path

from labeling.views import manager, reviewer

app_name = "labeling"

urlpatterns = [
    path("review/", reviewer.reviewer_queue, name="reviewer-queue"),
    path("review/<slug:slug>/", reviewer.workspace, name="workspace"),
    path("manage/", manager.manager_dashboard, name="manager-dashboard"),
    path("manage/projects/new/", manager.project_create_page, name="project-create"),
    path("manage/projects/<slug:slug>/leaderboard/", manager.project_leaderboard, name="project-leaderboard"),
    path("manage/campaigns/new/", manager.campaign_create_page, name="campaign-create"),
    path("manage/campaigns/<slug:slug>/", manager.campaign_detail, name="campaign-detail"),
    path("manage/campaigns/<slug:slug>/edit/", manager.campaign_edit_page, name="campaign-edit"),
    path("manage/campaigns/<slug:slug>/status/", manager.campaign_status, name="campaign-status"),
    path("manage/campaigns/<slug:slug>/import/", manager.campaign_import, name="campaign-import"),
    path("manage/campaigns/<slug:slug>/reviewers/", manager.campaign_reviewers, name="campaign-reviewers"),
    path(
        "manage/campaigns/<slug:slug>/reviewers/add-team/",
        manager.campaign_reviewers_add_team,
        name="campaign-reviewers-add-team",
    ),
    path("manage/campaigns/<slug:slug>/quality/", manager.campaign_quality, name="campaign-quality"),
    path("manage/campaigns/<slug:slug>/tasks/", manager.campaign_tasks, name="campaign-tasks"),
    path("manage/campaigns/<slug:slug>/tasks/<id:task_id>/", manager.campaign_task, name="campaign-task"),
    path(
        "manage/campaigns/<slug:slug>/tasks/<id:task_id>/requeue/",
        manager.campaign_task_requeue,
        name="campaign-task-requeue",
    ),
    path("manage/datasets/", manager.datasets_page, name="datasets"),
    path("manage/datasets/<id:dataset_id>/", manager.dataset_detail, name="dataset-detail"),
    path("manage/jobs/<id:job_id>/", manager.data_job_detail, name="data-job"),
    path("manage/jobs/<id:job_id>/live/", manager.data_job_live, name="data-job-live"),
]
