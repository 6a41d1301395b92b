from django.urls import path

from labeling.views import manager, reviewer

app_name = "labeling"

urlpatterns = [
    path("review/", reviewer.reviewer_queue, name="reviewer-queue"),
    path("manage/", manager.manager_dashboard, name="manager-dashboard"),
]
