from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from rlhf_platform.roles import user_is_manager, user_is_reviewer
from rlhf_platform.selectors import database_is_reachable


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if user_is_manager(request.user):
        return redirect("labeling:manager-dashboard")
    if user_is_reviewer(request.user):
        return redirect("labeling:reviewer-queue")
    return render(request, "no_role.html", status=403)


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    database_ok = database_is_reachable()
    return JsonResponse(
        {"status": "ok" if database_ok else "error", "database": "ok" if database_ok else "unreachable"},
        status=200 if database_ok else 503,
    )
