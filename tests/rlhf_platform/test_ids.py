"""An id no database column can hold is not a route: 404 on every page and API path, and a refused
websocket handshake; never a 500 from the database (OverflowError on SQLite, DataError on PostgreSQL)."""

from __future__ import annotations

import re

import pytest
from channels.testing import WebsocketCommunicator
from django.urls import URLPattern, URLResolver, get_resolver

from rlhf_platform.asgi import application
from rlhf_platform.converters import MAX_ID
from rlhf_platform.roles import Role

BEYOND = [str(MAX_ID + 1), str(2**64), "9" * 25]
ID_PARAMETER = re.compile(r"<id:\w+>")
OTHER_PARAMETER = re.compile(r"<(?:(?:str|slug):)?\w+>")


def routes_with_ids(patterns=None, prefix: str = "") -> list[str]:
    """Every URL pattern that takes a database id, as a path template (other parameters filled in)."""
    found = []
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += routes_with_ids(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and ID_PARAMETER.search(route):
            found.append("/" + OTHER_PARAMETER.sub("demo", route))
    return found


ROUTES = routes_with_ids()


def test_every_id_route_uses_the_database_id_converter():
    assert len(ROUTES) >= 30  # pages and API of both apps
    for entry_route in routes_with_ids():
        assert "<int:" not in entry_route


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.REVIEWER, Role.MANAGER])
def test_an_id_beyond_the_database_is_a_404_everywhere(client, make_user, role):
    client.force_login(make_user(f"someone-{role}", role=role))
    for template in ROUTES:
        for value in BEYOND:
            path = ID_PARAMETER.sub(value, template)
            for method in (client.get, client.post):
                assert method(path).status_code == 404, f"{method.__name__.upper()} {path}"


@pytest.mark.django_db
def test_the_reviewer_endpoints_answer_404_for_a_huge_id_through_the_api(api_client, make_user):
    api_client.force_authenticate(make_user("reviewer-api", role=Role.REVIEWER))
    huge = MAX_ID + 1
    for path in ("campaigns/{}/", "campaigns/{}/held/", "campaigns/{}/progress/", "campaigns/{}/next/"):
        assert api_client.get("/api/" + path.format(huge)).status_code == 404
    assert api_client.post(f"/api/campaigns/{huge}/undo/").status_code == 404
    assert api_client.post(f"/api/assignments/{huge}/submit/", {}, format="json").status_code == 404
    assert api_client.get(f"/api/campaigns/{MAX_ID}/").status_code == 404  # the largest id still resolves


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", [f"/ws/training/runs/{MAX_ID + 1}/", "/ws/training/rounds/99999999999999999999/"])
async def test_a_websocket_for_an_id_beyond_the_database_is_refused(path):
    communicator = WebsocketCommunicator(application, path, headers=[(b"host", b"127.0.0.1")])
    connected, _code = await communicator.connect()
    assert not connected
    await communicator.disconnect()


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_an_api_path_that_is_no_route_answers_json(client, make_user, settings, debug):
    settings.DEBUG = debug
    client.force_login(make_user(f"json-404-{debug}", role=Role.MANAGER))
    for path in ("/api/campaigns/abc/", f"/api/campaigns/{MAX_ID + 1}/", "/api/no-such-thing/"):
        response = client.get(path)
        assert response.status_code == 404 and response.json() == {"detail": "Not found."}, path
    page = client.get("/manage/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
