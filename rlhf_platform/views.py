from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from rlhf_platform import selectors, services
from rlhf_platform.errors import UserError
from rlhf_platform.forms import AuditFilterForm, TokenForm
from rlhf_platform.pagination import list_page
from rlhf_platform.permissions import manager_required
from rlhf_platform.roles import user_is_manager, user_is_reviewer


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
    database_ok = selectors.database_is_reachable()
    return JsonResponse(
        {"status": "ok" if database_ok else "error", "database": "ok" if database_ok else "unreachable"},
        status=200 if database_ok else 503,
    )


@manager_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    """Managers' actions, newest first, filtered by who, what, on which object and when."""
    form = AuditFilterForm(request.GET)
    entries = selectors.audit_entries(**form.cleaned_data) if form.is_valid() else selectors.audit_entries().none()
    page = list_page(request, entries)
    context = {"form": form, "entries": page, "rows": [selectors.audit_row(entry) for entry in page]}
    return render(request, "audit_log.html", context, status=200 if form.is_valid() else 400)


def _tokens_page(request: HttpRequest, *, form: TokenForm, new_key: str = "", status: int = 200) -> HttpResponse:
    context = {"form": form, "tokens": selectors.tokens_of_user(user=request.user), "new_key": new_key}
    return render(request, "account/tokens.html", context, status=status)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def tokens_page(request: HttpRequest) -> HttpResponse:
    """One's own API tokens; a POST creates one and shows its key in this response only (never_cache:
    the page may hold a key, so no browser or proxy may keep it)."""
    if request.method != "POST":
        return _tokens_page(request, form=TokenForm())
    form = TokenForm(request.POST)
    if form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        try:
            created = services.token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                expires_at=timezone.now() + timedelta(days=days) if days else None,
            )
        except UserError as error:
            for field, message in error.errors.items() or [(None, error.message)]:
                form.add_error(field if field in form.fields else None, message)
        else:
            messages.success(request, f"Token “{created.token.name}” created. Copy its key now: it is shown only once.")
            return _tokens_page(request, form=TokenForm(), new_key=created.key)
    return _tokens_page(request, form=form, status=400)


def _revoke(request: HttpRequest, token_id: int) -> None:
    try:
        token = services.token_revoke(token_id=token_id, actor=request.user)
    except services.TokenNotFound:
        raise Http404("No such token.") from None
    messages.success(request, f"Revoked “{token.name}” ({token.user.get_username()}): it no longer works.")


@never_cache
@login_required
@require_POST
def token_revoke_page(request: HttpRequest, token_id: int) -> HttpResponse:
    _revoke(request, token_id)
    return redirect("account-tokens")


@never_cache
@login_required
@require_POST
def token_rotate_page(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        created = services.token_rotate(token_id=token_id, actor=request.user)
    except services.TokenNotFound:
        raise Http404("No such token.") from None
    except UserError as error:
        messages.error(request, error.message)
        return redirect("account-tokens")
    messages.success(request, f"New key for “{created.token.name}”; the old one no longer works. Copy it now.")
    return _tokens_page(request, form=TokenForm(), new_key=created.key)


@manager_required
def manager_tokens_page(request: HttpRequest) -> HttpResponse:
    """Everyone's API tokens, newest first, to find and stop one (keys are never shown)."""
    username = request.GET.get("user", "").strip()
    tokens = list_page(request, selectors.tokens_all(username=username))
    return render(request, "account/manager_tokens.html", {"tokens": tokens, "username": username})


@manager_required
@require_POST
def manager_token_revoke_page(request: HttpRequest, token_id: int) -> HttpResponse:
    _revoke(request, token_id)
    return redirect("manager-tokens")
