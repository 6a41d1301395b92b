"""The permission matrix: every route and websocket of the URL configuration, for every kind of caller.

Routes come from the URL resolver (as in ``test_ids.py``) and websockets from the ASGI routing,
so a new route is requested here the day it is added, and fails until ``permission_table.py``
says what each caller should get. Each request is made against real objects (``world.py``), so
ids resolve and the check that answers is the permission check, not a 404 for a missing row.
A refused write must be refused before anything changes: the tables are compared before and
after it. Websockets are opened with a session cookie, through the same auth middleware and
origin check as in production.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from rlhf_platform.asgi import application
from rlhf_platform.roles import Role
from rlhf_platform.routing import websocket_urlpatterns
from tests.rlhf_platform.permission_table import BODIES, CSRF_FREE, LOGIN, ROUTES, SKIPPED_PREFIXES, WEBSOCKETS
from tests.rlhf_platform.world import ANONYMOUS, CALLERS, INSIDER, MANAGER, OUTSIDER, world_once
from training.models import ModelArtifact, Round, Stage, TrainingRun

LOGIN_PAGE = resolve_url(settings.LOGIN_URL)
PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")
METHODS = ("get", "post", "put", "patch", "delete")
TABLE_FILE = "tests/rlhf_platform/permission_table.py"
# What a refused request must leave untouched: every table of the apps and of accounts and tokens.
WATCHED_APPS = ("labeling", "training", "auth", "authtoken")


def url_patterns(patterns=None, prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str, URLPattern]]:
    """(name with its namespace, route, pattern) of every URL pattern, the skipped prefixes left out."""
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(entry.pattern)
        if route.startswith(tuple(SKIPPED_PREFIXES)):
            continue
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from url_patterns(entry.url_patterns, route, inner)
        else:
            yield namespace + (entry.name or route), route, entry


def route_methods(pattern: URLPattern) -> list[str]:
    """GET, and every method the view has a handler for; function views are asked GET and POST."""
    view_class = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
    if view_class is None:
        return ["GET", "POST"]
    handled = [m for m in METHODS if m in view_class.http_method_names and hasattr(view_class, m)]
    return ["GET", *(m.upper() for m in handled if m != "get")]


ROUTE_LIST = list(url_patterns())
WRITES = [
    pytest.param(name, route, method, id=f"{method} {name}")
    for name, route, pattern in ROUTE_LIST
    for method in route_methods(pattern)
    if method != "GET"
]
CASES = [
    pytest.param(name, route, method, caller, id=f"{method} {name} as {caller}")
    for name, route, pattern in ROUTE_LIST
    for method in route_methods(pattern)
    for caller in CALLERS
]


def database_state() -> dict[str, list[tuple]]:
    """Every row of the watched tables (join tables included), to compare before and after a request."""
    state = {}
    for model in apps.get_models(include_auto_created=True):
        if model._meta.app_label in WATCHED_APPS:
            state[model._meta.label] = list(model._default_manager.order_by("pk").values_list())
    return state


def signed_in_client(world, url: str, caller: str) -> Client:
    """A client as ``caller``: an API token for the API, a session for pages (as browsers and programs do)."""
    if caller == ANONYMOUS:
        return Client()
    if url.startswith("/api/"):
        return Client(HTTP_AUTHORIZATION=f"Token {world.tokens[caller]}")
    client = Client()
    client.force_login(world.users[caller])
    return client


def send(client: Client, name: str, url: str, method: str):
    if url.startswith("/api/"):
        return client.generic(method, url, json.dumps(BODIES.get(name, {})), content_type="application/json")
    return client.generic(method, url, "", content_type="application/x-www-form-urlencoded")


@pytest.fixture(scope="class")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    yield from world_once(django_db_blocker, tmp_path_factory.mktemp("matrix-world"))


@pytest.mark.django_db
class TestHttpRoutes:
    """One class, so the world is built once for all its tests; each test runs in its own savepoint."""

    @pytest.mark.parametrize(("name", "route", "method", "caller"), CASES)
    def test_the_route_answers_as_the_table_says(self, world, name, route, method, caller):
        expected_by_method = ROUTES.get(name)
        if expected_by_method is None or method not in expected_by_method:
            pytest.fail(
                f"{method} {name} (/{route}) has no entry in {TABLE_FILE}. Add what each caller "
                f"({', '.join(CALLERS)}) should get, e.g. {{{method!r}: (401, 403, 403, 200)}}."
            )
        expected = expected_by_method[method][CALLERS.index(caller)]
        refused = expected == LOGIN or expected in (401, 403, 404, 405)
        watched = refused and method != "GET"  # the writes: refused, they must change nothing
        url = reverse(name, kwargs={p: world.url_kwargs(name)[p] for p in PARAMETER.findall(route)})
        client = signed_in_client(world, url, caller)
        before = database_state() if watched else None
        response = send(client, name, url, method)
        location = response.get("Location", "")
        if expected == LOGIN:
            assert response.status_code == 302 and location.startswith(LOGIN_PAGE), (
                f"expected a redirect to the login page, got {response.status_code} {location}"
            )
        else:
            assert response.status_code == expected, f"expected {expected}, got {response.status_code} {location}"
        if watched:
            assert database_state() == before, "a refused request changed the database"

    @pytest.mark.parametrize(("name", "route", "method"), WRITES)
    def test_a_write_signed_by_a_session_needs_the_csrf_token(self, world, name, route, method):
        """A page on another site can make a signed-in browser send any form: without the token,
        every write is refused (403) and changes nothing, whatever the route and its role."""
        expected = ROUTES.get(name, {}).get(method)
        if expected is None:
            pytest.skip("no table entry: the matrix test above fails for it")
        if name in CSRF_FREE:
            return
        # As the caller the route lets through (a refused one would be refused anyway).
        caller = next((c for c in (MANAGER, INSIDER) if expected[CALLERS.index(c)] not in (403, 404)), MANAGER)
        client = Client(enforce_csrf_checks=True)
        client.force_login(world.users[caller])
        url = reverse(name, kwargs={p: world.url_kwargs(name)[p] for p in PARAMETER.findall(route)})
        before = database_state()
        response = send(client, name, url, method)
        assert response.status_code == 403, f"{response.status_code} without a CSRF token, as {caller}"
        assert database_state() == before


def test_every_route_of_the_table_exists():
    """A renamed or removed route leaves no stale row behind (it would test nothing)."""
    names = {name for name, _, _ in ROUTE_LIST}
    assert set(ROUTES) - names == set()
    for name, _, pattern in ROUTE_LIST:
        assert set(ROUTES.get(name, {})) <= set(route_methods(pattern)), f"{name}: a method it does not route"
    assert set(WEBSOCKETS) == {str(pattern.pattern) for pattern in websocket_urlpatterns}


def test_the_skipped_routes_are_only_the_admin():
    """Only what SKIPPED_PREFIXES names is left out, and the matrix covers pages and the API of both apps."""
    every_route = [prefix + str(p.pattern) for p, prefix in _all_patterns()]
    skipped = [route for route in every_route if route.startswith(tuple(SKIPPED_PREFIXES))]
    assert skipped and all(route.startswith("admin/") for route in skipped)
    assert len(ROUTE_LIST) == len(every_route) - len(skipped)
    routes = [route for _, route, _ in ROUTE_LIST]
    for part in ("api/training/", "api/campaigns/", "training/", "manage/", "review/"):
        assert any(route.startswith(part) for route in routes), part


def _all_patterns(patterns=None, prefix: str = "") -> Iterator[tuple[URLPattern, str]]:
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from _all_patterns(entry.url_patterns, prefix + str(entry.pattern))
        else:
            yield entry, prefix


# --- websockets -----------------------------------------------------------------------------------


@pytest.fixture
def websocket_world(db, monkeypatch) -> dict:
    """Sessions of each caller and the ids a websocket route names.

    The test is synchronous and drives the socket through ``async_to_sync``, so the database calls
    of the auth middleware and the consumer (thread-sensitive) run in this thread, on the test's
    connection, inside its transaction: no transactional test, whose flush would cost more than
    the whole check. Channels closes "old" connections around each of those calls, which would
    close this one (it is inside a transaction); that is switched off here, as Django's test
    client does for requests.
    """
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)
    users = {}
    for caller, role in ((OUTSIDER, Role.REVIEWER), (INSIDER, Role.REVIEWER), (MANAGER, Role.MANAGER)):
        users[caller] = get_user_model().objects.create_user(username=f"ws-{role}-{len(users)}")
        users[caller].groups.add(Group.objects.get_or_create(name=role)[0])
    model = ModelArtifact.objects.create(name="ws-base", path="/nonexistent")
    training_round = Round.objects.create(name="ws round", preset=Round.Preset.SINGLE, base_model=model)
    run = TrainingRun.objects.create(round=training_round, stage=Stage.SFT, input_model=model)
    cookies = {ANONYMOUS: ""}
    for caller, user in users.items():
        client = Client()
        client.force_login(user)
        cookies[caller] = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return {"cookies": cookies, "kwargs": {"run_id": run.pk, "round_id": training_round.pk}}


async def handshake(path: str, cookie: str) -> bool:
    headers = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


@pytest.mark.parametrize(
    ("route", "caller"),
    [pytest.param(route, caller, id=f"ws /{route} as {caller}") for route in WEBSOCKETS for caller in CALLERS],
)
def test_the_websocket_accepts_whom_the_table_says(websocket_world, route, caller):
    path = "/" + (PARAMETER.sub(lambda m: str(websocket_world["kwargs"][m[1]]), route) or "ws/no-such-route/")
    connected = async_to_sync(handshake)(path, websocket_world["cookies"][caller])
    assert connected == WEBSOCKETS[route][CALLERS.index(caller)]
