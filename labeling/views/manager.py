from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from labeling import selectors
from rlhf_platform.permissions import manager_required


@manager_required
def manager_dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "labeling/manager_dashboard.html", {"team": selectors.team_counts()})
