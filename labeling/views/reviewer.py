from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from labeling import selectors
from labeling.rendering import highlight_css
from rlhf_platform.permissions import reviewer_required


@reviewer_required
def reviewer_queue(request: HttpRequest) -> HttpResponse:
    queue = selectors.review_queue(reviewer=request.user)
    return render(request, "labeling/reviewer_queue.html", {"campaigns": queue.campaigns, "finished": queue.finished})


@reviewer_required
def workspace(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = get_object_or_404(selectors.campaigns_for_reviewer(reviewer=request.user), slug=slug)
    return render(
        request,
        "labeling/reviewer/workspace.html",
        {
            "campaign": campaign,
            "config": selectors.workspace_config(campaign=campaign),
            "highlight_css": highlight_css(),
        },
    )
