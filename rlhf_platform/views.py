from datetime import timedelta

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from rlhf_platform import selectors, services
from rlhf_platform.errors import UserError
from rlhf_platform.forms import AuditFilterForm, InviteForm, RolesForm, TeamForm, TokenForm
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


# --- people and teams (managers) ----------------------------------------------------------------


def _people_page(
    request: HttpRequest, *, form: InviteForm, link: services.SetPasswordLink | None = None, status: int = 200
) -> HttpResponse:
    query, show = request.GET.get("q", "").strip(), request.GET.get("show", "")
    if show not in selectors.PEOPLE_FILTERS:
        show = ""
    people = list_page(request, selectors.people_list(query=query, show=show))
    context = {
        "form": form,
        "people": people,
        "rows": [selectors.person_row(user) for user in people],
        "query": query,
        "show": show,
        "filters": selectors.PEOPLE_FILTERS,
        "link": link,
        "link_url": request.build_absolute_uri(link.path) if link else "",
    }
    return render(request, "people/people.html", context, status=status)


def _form_errors_from(form, error: UserError) -> None:
    for field, message in error.errors.items() or [(None, error.message)]:
        form.add_error(field if field in form.fields else None, message)


@manager_required
@require_http_methods(["GET", "POST"])
def people_page(request: HttpRequest) -> HttpResponse:
    """Everyone with their roles and teams; a POST invites someone and shows their set-password link
    in this answer only (never_cache, through manager_required: the link is a way into an account)."""
    if request.method != "POST":
        return _people_page(request, form=InviteForm())
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            link = services.user_invite(actor=request.user, **form.cleaned_data)
        except UserError as error:
            _form_errors_from(form, error)
        else:
            return _people_page(request, form=InviteForm(), link=link)
    return _people_page(request, form=form, status=400)


def _person(user_id: int):
    try:
        return selectors.person_get(user_id=user_id)
    except services.PersonNotFound:
        raise Http404("No such person.") from None


def _person_page(request: HttpRequest, user, *, link: services.SetPasswordLink | None = None) -> HttpResponse:
    row = selectors.person_row(user)
    context = {
        "row": row,
        "person": user,
        "roles_form": RolesForm(initial={"roles": row["role_values"]}),
        "link": link,
        "link_url": request.build_absolute_uri(link.path) if link else "",
        "audit_url": f"{reverse('audit-log')}?target_type=user&target_id={user.pk}",
    }
    return render(request, "people/person.html", context)


@manager_required
@require_GET
def person_page(request: HttpRequest, user_id: int) -> HttpResponse:
    return _person_page(request, _person(user_id))


@manager_required
@require_POST
def person_roles_page(request: HttpRequest, user_id: int) -> HttpResponse:
    form = RolesForm(request.POST)
    try:
        if not form.is_valid():
            raise UserError("Choose roles from the list.")
        user = services.user_set_roles(user_id=user_id, roles=form.cleaned_data["roles"], actor=request.user)
    except services.PersonNotFound:
        raise Http404("No such person.") from None
    except UserError as error:
        messages.error(request, " ".join([error.message, *error.errors.values()]))
    else:
        roles = selectors.person_row(user)["roles"]
        messages.success(request, f"{user.get_username()}: {', '.join(roles) if roles else 'no role'}.")
    return redirect("person", user_id=user_id)


@manager_required
@require_POST
def person_active_page(request: HttpRequest, user_id: int) -> HttpResponse:
    wanted = request.POST.get("active")
    try:
        if wanted not in ("0", "1"):
            raise UserError("Say whether to activate (1) or deactivate (0).")
        user = services.user_set_active(user_id=user_id, active=wanted == "1", actor=request.user)
    except services.PersonNotFound:
        raise Http404("No such person.") from None
    except UserError as error:
        messages.error(request, " ".join([error.message, *error.errors.values()]))
    else:
        state = "active again" if user.is_active else "deactivated: they can no longer sign in"
        messages.success(request, f"{user.get_username()} is {state}.")
    return redirect("person", user_id=user_id)


@manager_required
@require_POST
def person_link_page(request: HttpRequest, user_id: int) -> HttpResponse:
    try:
        link = services.user_password_link(user_id=user_id, actor=request.user)
    except services.PersonNotFound:
        raise Http404("No such person.") from None
    except UserError as error:
        messages.error(request, error.message)
        return redirect("person", user_id=user_id)
    return _person_page(request, link.user, link=link)


@manager_required
@require_http_methods(["GET", "POST"])
def teams_page(request: HttpRequest) -> HttpResponse:
    """Teams of people, to add to a campaign's pool in one go; a POST creates one."""
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = services.team_create(name=form.cleaned_data["name"], actor=request.user)
        except UserError as error:
            _form_errors_from(form, error)
        else:
            messages.success(request, f"Team “{team.name}” created: now choose its people.")
            return redirect("team", team_id=team.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "people/teams.html", {"form": form, "teams": selectors.teams_list()}, status=status)


@manager_required
@require_http_methods(["GET", "POST"])
def team_page(request: HttpRequest, team_id: int) -> HttpResponse:
    try:
        team = selectors.team_get(team_id=team_id)
    except services.TeamNotFound:
        raise Http404("No such team.") from None
    if request.method == "POST":
        try:
            members = services.team_set_members(
                team_id=team.pk, usernames=request.POST.getlist("members"), actor=request.user
            )
        except UserError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"“{team.name}” saved: {len(members)} member{'s' if len(members) != 1 else ''}.")
        return redirect("team", team_id=team.pk)
    context = {"team": team, "choices": selectors.team_member_choices(team=team)}
    return render(request, "people/team.html", context)


@manager_required
@require_POST
def team_delete_page(request: HttpRequest, team_id: int) -> HttpResponse:
    try:
        name = services.team_delete(team_id=team_id, actor=request.user)
    except services.TeamNotFound:
        raise Http404("No such team.") from None
    messages.success(request, f"Team “{name}” deleted. Its people, and the pools it was added to, are unchanged.")
    return redirect("teams")


# --- the set-password page (public: the link's token is the credential) --------------------------


class SetPasswordView(auth_views.PasswordResetConfirmView):
    """Django's password-reset confirmation: the token is checked (and moved out of the address into
    the session, so it never leaks in a Referer), the password goes through AUTH_PASSWORD_VALIDATORS;
    then the service sets it, which voids the link, and the person is signed in."""

    template_name = "registration/set_password.html"
    token_generator = services.set_password_tokens
    reset_url_token = "set"  # noqa: S105 (stands for the token in the address; not a secret)
    post_reset_login = True
    post_reset_login_backend = "django.contrib.auth.backends.ModelBackend"
    success_url = reverse_lazy("home")

    def get_user(self, uidb64: str):
        user = super().get_user(uidb64)
        # A deactivated person's links are void (their token says so too; this says it before the form).
        return user if user is not None and user.is_active else None

    def form_valid(self, form) -> HttpResponse:
        try:
            user = services.user_password_set_by_link(user=form.user, password=form.cleaned_data["new_password1"])
        except UserError as error:
            _form_errors_from(form, error)
            return self.form_invalid(form)
        del self.request.session[auth_views.INTERNAL_RESET_SESSION_TOKEN]
        login(self.request, user, self.post_reset_login_backend)
        messages.success(self.request, f"Welcome, {user.get_username()}: your password is set.")
        return redirect(self.success_url)
