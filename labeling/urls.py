from django.urls import path

from labeling import views

app_name = "labeling"

urlpatterns = [
    path("review/", views.reviewer_queue, name="reviewer-queue"),
    path("manage/", views.manager_dashboard, name="manager-dashboard"),
]
