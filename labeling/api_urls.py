from django.urls import path

from labeling import api

urlpatterns = [
    # The reviewer loop first: Django tries patterns in order, and these take most requests.
    path("campaigns/<id:campaign_id>/next/", api.NextTaskApi.as_view(), name="api-next-task"),
    path("assignments/<id:assignment_id>/submit/", api.SubmitApi.as_view(), name="api-submit"),
    path("projects/", api.ProjectListCreateApi.as_view(), name="api-projects"),
    path("projects/<id:project_id>/", api.ProjectDetailApi.as_view(), name="api-project"),
    path("projects/<id:project_id>/leaderboard/", api.ProjectLeaderboardApi.as_view(), name="api-project-leaderboard"),
    path("campaigns/", api.CampaignListCreateApi.as_view(), name="api-campaigns"),
    path("campaigns/<id:campaign_id>/", api.CampaignDetailApi.as_view(), name="api-campaign"),
    path("campaigns/<id:campaign_id>/status/", api.CampaignStatusApi.as_view(), name="api-campaign-status"),
    path("campaigns/<id:campaign_id>/reviewers/", api.CampaignReviewersApi.as_view(), name="api-campaign-reviewers"),
    path(
        "campaigns/<id:campaign_id>/reviewers/add-team/",
        api.CampaignReviewersAddTeamApi.as_view(),
        name="api-campaign-reviewers-add-team",
    ),
    path("campaigns/<id:campaign_id>/import/", api.CampaignImportApi.as_view(), name="api-campaign-import"),
    path("campaigns/<id:campaign_id>/stats/", api.CampaignStatsApi.as_view(), name="api-campaign-stats"),
    path("campaigns/<id:campaign_id>/quality/", api.CampaignQualityApi.as_view(), name="api-campaign-quality"),
    path(
        "campaigns/<id:campaign_id>/judgements.jsonl",
        api.CampaignJudgementsExportApi.as_view(),
        name="api-campaign-judgements",
    ),
    path("campaigns/<id:campaign_id>/tasks/", api.CampaignTasksApi.as_view(), name="api-campaign-tasks"),
    path("campaigns/<id:campaign_id>/tasks/<id:task_id>/", api.CampaignTaskApi.as_view(), name="api-campaign-task"),
    path(
        "campaigns/<id:campaign_id>/tasks/<id:task_id>/requeue/",
        api.CampaignTaskRequeueApi.as_view(),
        name="api-campaign-task-requeue",
    ),
    path("campaigns/<id:campaign_id>/held/", api.HeldTasksApi.as_view(), name="api-held-tasks"),
    path("campaigns/<id:campaign_id>/undo/", api.UndoApi.as_view(), name="api-undo"),
    path("campaigns/<id:campaign_id>/progress/", api.ProgressApi.as_view(), name="api-progress"),
    path("assignments/<id:assignment_id>/skip/", api.SkipApi.as_view(), name="api-skip"),
]

urlpatterns += [
    path("datasets/", api.DatasetListCreateApi.as_view(), name="api-datasets"),
    path("datasets/<id:dataset_id>/", api.DatasetDetailApi.as_view(), name="api-dataset"),
    path("datasets/<id:dataset_id>/download/", api.DatasetDownloadApi.as_view(), name="api-dataset-download"),
    path("data-jobs/", api.DataJobListApi.as_view(), name="api-data-jobs"),
    path("data-jobs/<id:job_id>/", api.DataJobDetailApi.as_view(), name="api-data-job"),
]
