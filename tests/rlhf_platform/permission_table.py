"""Who may do what: the expected answer of every route and websocket to each kind of caller.

``tests/rlhf_platform/test_permission_matrix.py`` requests every route of the URL configuration
with each method it answers, as each caller, against the objects of ``world.py``, and compares
with this table. A route that is not here fails that test: add its row when you add a route.

Columns, in order: anonymous, a reviewer outside the campaign's pool, a reviewer in the pool, a
manager (who is not a reviewer). Values:

- ``LOGIN``: a redirect (302) to the login page (anonymous visitors of pages);
- a status code. 401: no credentials (the API); 403: signed in without the role; 404: the
  object is not the caller's (a campaign outside a reviewer's pool, someone else's assignment);
  405: the route does not answer that method (checked after the role: a caller without it gets
  401 or 403). A 302 is the page's own redirect after it did its work. For a permitted write, the status is what an empty (or
  the given) body gets: 400 from validation, 409 from the object's state, and so on; the point
  is that the permission check let it through and nothing failed.

API routes are called with an API token (``Authorization: Token ...``), pages with a session.
"""

from __future__ import annotations

LOGIN = "login"

# Skipped on purpose: Django's admin (staff-only, Django's own permission checks and tests) and
# static files (ServeStatic serves them before the URL configuration; here for safety).
SKIPPED_PREFIXES = {
    "admin/": "Django's admin: its own staff-only checks, tested by Django",
    "static/": "static files: public by design, served by ServeStatic",
}

# Writes that need no CSRF token: nothing in them acts on a session's behalf.
CSRF_FREE = {
    "api-token": "takes a username and password in the body, never a session",
}

# Request bodies for the routes where an empty one would stop at validation before the check
# that matters (whose assignment it is).
BODIES = {
    "api-submit": {"answers": {}, "client_submission_id": "matrix-1", "time_spent_ms": 1},
    "api-skip": {"reason": "Not my field."},
}

#                                         anonymous, outsider, insider, manager
PAGE = {"GET": (LOGIN, 403, 403, 200), "POST": (LOGIN, 403, 403, 200)}  # a manager's page that only shows
MANAGER_ACTION = {"GET": (LOGIN, 403, 403, 405), "POST": (LOGIN, 403, 403, 302)}  # a manager's button (POST)
MANAGER_READ = {"GET": (401, 403, 403, 200)}  # the API: a manager's read

ROUTES: dict[str, dict[str, tuple]] = {
    # --- the site -----------------------------------------------------------------------------
    "home": {"GET": (LOGIN, 302, 302, 302), "POST": (LOGIN, 302, 302, 302)},  # to each role's start page
    "healthz": {"GET": (200, 200, 200, 200), "POST": (405, 405, 405, 405)},  # for load balancers
    "login": {
        "GET": (200, 302, 302, 302),  # signed in already: on to the start page
        "POST": (200, 302, 302, 302),  # anonymous: the form again, with its errors
        "PUT": (200, 302, 302, 302),  # Django's form view treats PUT as POST
    },
    "logout": {"GET": (405, 405, 405, 405), "POST": (302, 302, 302, 302)},  # to the login page
    # The invitee's page: public, the token in the address is the credential (the world's is void).
    "set-password": {  # "this link does not work"
        "GET": (200, 200, 200, 200),
        "POST": (200, 200, 200, 200),
        "PUT": (200, 200, 200, 200),  # Django's form view treats PUT as POST
    },
    # --- the API: schema, token, who am I -------------------------------------------------------
    "api-schema": {"GET": (401, 200, 200, 200)},
    "api-docs": {"GET": (401, 200, 200, 200)},
    "api-token": {"GET": (405, 405, 405, 405), "POST": (400, 400, 400, 400)},  # credentials in the body
    "api-me": {"GET": (401, 200, 200, 200)},
    # --- API tokens: anyone signed in manages their own; a token cannot mint or rotate tokens ----
    "api-tokens": {"GET": (401, 200, 200, 200), "POST": (401, 403, 403, 403)},
    "api-token-revoke": {"GET": (401, 405, 405, 405), "POST": (401, 404, 404, 200)},  # the manager's token
    "api-token-rotate": {"GET": (401, 403, 403, 403), "POST": (401, 403, 403, 403)},  # before the method
    # --- the audit log and data jobs (imports, dataset builds) -----------------------------------
    "api-audit": MANAGER_READ,
    # --- the API: people and teams; invitations and links need a password session, not a token --
    "api-people": {**MANAGER_READ, "POST": (401, 403, 403, 403)},
    "api-person": {**MANAGER_READ, "PATCH": (401, 403, 403, 200)},  # an empty change
    "api-person-password-link": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 403)},
    "api-teams": {**MANAGER_READ, "POST": (401, 403, 403, 400)},  # no name
    "api-team": {**MANAGER_READ, "PUT": (401, 403, 403, 400), "DELETE": (401, 403, 403, 204)},  # PUT: no members
    "api-data-jobs": MANAGER_READ,
    "api-data-job": MANAGER_READ,
    # --- the API: a reviewer's own work (a manager who is not a reviewer has none) -------------
    "api-next-task": {"GET": (401, 405, 405, 403), "POST": (401, 404, 200, 403)},
    "api-held-tasks": {"GET": (401, 404, 200, 403)},
    "api-progress": {"GET": (401, 404, 200, 403)},
    "api-undo": {"GET": (401, 405, 405, 403), "POST": (401, 404, 200, 403)},
    "api-submit": {"GET": (401, 405, 405, 403), "POST": (401, 404, 400, 403)},  # no answers: 400
    "api-skip": {"GET": (401, 405, 405, 403), "POST": (401, 404, 204, 403)},
    # --- the API: projects and campaigns (a reviewer reads their own campaigns) ----------------
    "api-projects": {**MANAGER_READ, "POST": (401, 403, 403, 400)},
    "api-project": {**MANAGER_READ, "PATCH": (401, 403, 403, 200), "DELETE": (401, 403, 403, 409)},  # has campaigns
    "api-project-leaderboard": MANAGER_READ,
    "api-campaigns": {"GET": (401, 200, 200, 200), "POST": (401, 403, 403, 400)},
    "api-campaign": {
        "GET": (401, 404, 200, 200),
        "PATCH": (401, 403, 403, 200),
        "DELETE": (401, 403, 403, 409),  # it has judgements
    },
    "api-campaign-status": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 400)},
    "api-campaign-reviewers": {"GET": (401, 403, 403, 405), "PUT": (401, 403, 403, 400)},
    "api-campaign-reviewers-add-team": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 400)},  # no team
    "api-campaign-import": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 415)},  # multipart only
    "api-campaign-stats": MANAGER_READ,
    "api-campaign-quality": MANAGER_READ,
    "api-campaign-judgements": MANAGER_READ,
    "api-campaign-tasks": MANAGER_READ,
    "api-campaign-task": MANAGER_READ,
    "api-campaign-task-requeue": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 400)},  # no votes
    # --- the API: preference datasets -----------------------------------------------------------
    "api-datasets": {**MANAGER_READ, "POST": (401, 403, 403, 400)},
    "api-dataset": MANAGER_READ,
    "api-dataset-download": MANAGER_READ,
    # --- the API: training ----------------------------------------------------------------------
    "api-training-models": {**MANAGER_READ, "POST": (401, 403, 403, 400)},
    "api-training-model": MANAGER_READ,
    "api-training-model-ab-results": MANAGER_READ,
    "api-training-model-mistakes": MANAGER_READ,
    "api-training-rounds": {**MANAGER_READ, "POST": (401, 403, 403, 400)},
    "api-training-round": MANAGER_READ,
    "api-training-round-cancel": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 200)},
    "api-training-evaluations": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 400)},
    "api-training-runs": MANAGER_READ,
    "api-training-comparisons": {**MANAGER_READ, "POST": (401, 403, 403, 400)},
    "api-training-comparison": MANAGER_READ,
    "api-training-runs-compare": {"GET": (401, 403, 403, 400)},  # no runs named
    "api-training-run": MANAGER_READ,
    "api-training-run-cancel": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 200)},
    "api-training-run-resume": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 409)},  # queued: nothing to resume
    "api-training-generation-jobs": {**MANAGER_READ, "POST": (401, 403, 403, 400)},
    "api-training-generation-job": MANAGER_READ,
    "api-training-generation-job-cancel": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 200)},
    "api-training-generation-job-resume": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 409)},
    "api-training-generation-job-start-review": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 409)},
    "api-training-generation-job-ab-result": {"GET": (401, 403, 403, 404)},  # not an A/B job
    "api-training-sweeps": {**MANAGER_READ, "POST": (401, 403, 403, 400)},
    "api-training-sweep": MANAGER_READ,
    "api-training-sweep-cancel": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 200)},
    "api-training-sweep-promote": {"GET": (401, 403, 403, 405), "POST": (401, 403, 403, 409)},  # still running
    # --- pages: reviewers -----------------------------------------------------------------------
    "labeling:reviewer-queue": {"GET": (LOGIN, 200, 200, 403), "POST": (LOGIN, 200, 200, 403)},
    "labeling:workspace": {"GET": (LOGIN, 404, 200, 403), "POST": (LOGIN, 404, 200, 403)},
    # --- pages: managers ------------------------------------------------------------------------
    "labeling:manager-dashboard": PAGE,
    "labeling:project-create": PAGE,  # POST: the form again, with its errors
    "labeling:project-leaderboard": PAGE,
    "labeling:campaign-create": PAGE,
    "labeling:campaign-detail": PAGE,
    "labeling:campaign-edit": PAGE,
    "labeling:campaign-status": MANAGER_ACTION,
    "labeling:campaign-import": {"GET": (LOGIN, 403, 403, 200), "POST": (LOGIN, 403, 403, 400)},  # no file
    "labeling:campaign-reviewers": {"GET": (LOGIN, 403, 403, 200), "POST": (LOGIN, 403, 403, 302)},
    "labeling:campaign-quality": PAGE,
    "labeling:campaign-tasks": {"GET": (LOGIN, 403, 403, 200), "POST": (LOGIN, 403, 403, 405)},
    "labeling:campaign-task": {"GET": (LOGIN, 403, 403, 200), "POST": (LOGIN, 403, 403, 405)},
    "labeling:campaign-task-requeue": MANAGER_ACTION,  # no votes: the error as a message
    "labeling:datasets": PAGE,
    "labeling:dataset-detail": PAGE,
    "training:home": PAGE,
    "training:round-launch": PAGE,
    "training:round-detail": PAGE,
    "training:round-live": PAGE,
    "training:round-ab": PAGE,
    "training:round-cancel": MANAGER_ACTION,
    "training:run-detail": PAGE,
    "training:run-live": PAGE,
    "training:run-cancel": MANAGER_ACTION,
    "training:run-resume": MANAGER_ACTION,
    "training:models": PAGE,
    "training:model-detail": PAGE,
    "training:model-ab": PAGE,
    "training:model-evaluate": PAGE,
    "training:model-mistakes": PAGE,
    "training:generate": PAGE,
    "training:generation-job": PAGE,
    "training:generation-job-live": PAGE,
    "training:generation-job-start": MANAGER_ACTION,
    # Comparisons and runs side by side: reads answer GET only. The side-by-side page without runs
    # is a 400 that says to pick some.
    "training:comparisons": {"GET": (LOGIN, 403, 403, 200), "POST": (LOGIN, 403, 403, 405)},
    "training:comparison-launch": PAGE,
    "training:comparison-detail": {"GET": (LOGIN, 403, 403, 200), "POST": (LOGIN, 403, 403, 405)},
    "training:comparison-live": {"GET": (LOGIN, 403, 403, 200), "POST": (LOGIN, 403, 403, 405)},
    "training:runs-compare": {"GET": (LOGIN, 403, 403, 400), "POST": (LOGIN, 403, 403, 405)},
    "training:sweeps": PAGE,
    "training:sweep-launch": PAGE,
    "training:sweep-detail": PAGE,
    "training:sweep-live": PAGE,
    "training:sweep-cancel": MANAGER_ACTION,
    "training:sweep-promote": MANAGER_ACTION,
    "labeling:data-job": PAGE,
    "labeling:data-job-live": PAGE,
    "audit-log": {"GET": (LOGIN, 403, 403, 200), "POST": (LOGIN, 403, 403, 405)},
    "manager-tokens": PAGE,
    "manager-token-revoke": MANAGER_ACTION,
    # --- pages: people and teams (managers) ------------------------------------------------------
    "people": {"GET": (LOGIN, 403, 403, 200), "POST": (LOGIN, 403, 403, 400)},  # invite: no username
    "person": {"GET": (LOGIN, 403, 403, 200), "POST": (LOGIN, 403, 403, 405)},
    "person-roles": MANAGER_ACTION,  # the outside reviewer: no roles left
    "person-active": MANAGER_ACTION,  # no "active" field: the error as a message
    "person-link": {"GET": (LOGIN, 403, 403, 405), "POST": (LOGIN, 403, 403, 200)},  # the link, shown once
    "teams": {"GET": (LOGIN, 403, 403, 200), "POST": (LOGIN, 403, 403, 400)},  # no name
    "team": {"GET": (LOGIN, 403, 403, 200), "POST": (LOGIN, 403, 403, 302)},
    "team-delete": MANAGER_ACTION,
    "labeling:campaign-reviewers-add-team": MANAGER_ACTION,  # no team: the error as a message
    # --- pages: one's own API tokens (anyone signed in) -----------------------------------------
    "account-tokens": {"GET": (LOGIN, 200, 200, 200), "POST": (LOGIN, 400, 400, 400)},  # no name
    "account-token-revoke": {"GET": (LOGIN, 405, 405, 405), "POST": (LOGIN, 404, 404, 302)},
    "account-token-rotate": {"GET": (LOGIN, 405, 405, 405), "POST": (LOGIN, 404, 404, 200)},  # the new key
}

# Websockets, by route: whether the handshake is accepted, per caller (same columns).
WEBSOCKETS: dict[str, tuple[bool, bool, bool, bool]] = {
    "ws/training/runs/<id:run_id>/": (False, False, False, True),
    "ws/training/rounds/<id:round_id>/": (False, False, False, True),
    "": (False, False, False, False),  # the catch-all: a path no route matches is refused
}
