from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from labeling import selectors
from rlhf_platform.permissions import reviewer_required


@reviewer_required
def reviewer_queue(request: HttpRequest) -> HttpResponse:
    campaigns = selectors.campaigns_for_reviewer(reviewer=request.user)
    return render(request, "labeling/reviewer_queue.html", {"campaigns": campaigns})
