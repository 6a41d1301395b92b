"""Request bodies over their route's limit are refused with 413 before they are read: a declared
Content-Length at once, a chunked body as soon as it passes the limit."""

from __future__ import annotations

import json

import pytest
from channels.testing import ApplicationCommunicator

from rlhf_platform.asgi import application
from rlhf_platform.body_limits import MULTIPART_ALLOWANCE, body_limit_for

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def http_scope(path: str, *, content_length: int | None = None) -> dict:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def response_of(communicator: ApplicationCommunicator) -> tuple[int, bytes]:
    start = await communicator.receive_output(timeout=5)
    body = b""
    while True:
        message = await communicator.receive_output(timeout=5)
        body += message.get("body", b"")
        if not message.get("more_body"):
            return start["status"], body


async def test_a_declared_300_mb_body_to_the_token_endpoint_is_refused_unread():
    communicator = ApplicationCommunicator(application, http_scope("/api/auth/token/", content_length=300 * 2**20))
    await communicator.send_input({"type": "http.request", "body": b'{"username": "x"', "more_body": True})
    status, body = await response_of(communicator)  # answered while the body is still "coming"
    assert status == 413
    assert json.loads(body) == {
        "detail": "The request body is larger than this endpoint accepts (10 MB).",
        "errors": {"body": "Too large."},
    }


async def test_a_chunked_body_is_cut_off_at_the_limit(settings):
    settings.REQUEST_BODY_MAX_BYTES = 1000
    communicator = ApplicationCommunicator(application, http_scope("/api/auth/token/"))
    for _ in range(3):
        await communicator.send_input({"type": "http.request", "body": b"x" * 400, "more_body": True})
    status, _body = await response_of(communicator)
    assert status == 413


async def test_a_body_within_the_limit_reaches_the_view(settings):
    settings.REQUEST_BODY_MAX_BYTES = 1000
    communicator = ApplicationCommunicator(application, http_scope("/api/auth/token/", content_length=2))
    await communicator.send_input({"type": "http.request", "body": b"{}", "more_body": False})
    status, body = await response_of(communicator)
    assert status == 400 and "username" in body.decode()  # the view read it and named the missing field


async def test_imports_take_the_import_limit(settings):
    settings.LABELING_IMPORT_MAX_BYTES = 5 * 2**20
    assert body_limit_for("/api/campaigns/3/import/") == 5 * 2**20 + MULTIPART_ALLOWANCE
    assert body_limit_for("/manage/campaigns/some-slug/import/") == 5 * 2**20 + MULTIPART_ALLOWANCE
    assert body_limit_for("/api/campaigns/3/") == settings.REQUEST_BODY_MAX_BYTES
    assert body_limit_for("/no/such/page/") == settings.REQUEST_BODY_MAX_BYTES
