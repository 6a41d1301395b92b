from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from rlhf_platform.forms import AuditFilterForm
from rlhf_platform.pagination import list_page
from rlhf_platform.permissions import manager_required
from rlhf_platform.roles import user_is_manager, user_is_reviewer
from rlhf_platform.selectors import audit_entries, audit_row, database_is_reachable


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


@manager_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    """Managers' actions, newest first, filtered by who, what, on which object and when."""
    form = AuditFilterForm(request.GET)
    entries = audit_entries(**form.cleaned_data) if form.is_valid() else audit_entries().none()
    page = list_page(request, entries)
    context = {"form": form, "entries": page, "rows": [audit_row(entry) for entry in page]}
    return render(request, "audit_log.html", context, status=200 if form.is_valid() else 400)
