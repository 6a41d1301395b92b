import asyncio
import json
import re
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.core.signals import request_finished

from rlhf_platform.asgi import application
from rlhf_platform.asgi_handler import SyncChainASGIHandler


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_serves_http_through_the_asgi_application():
    communicator = HttpCommunicator(application, "GET", "/healthz", headers=[(b"host", b"127.0.0.1")])
    response = await communicator.get_response(timeout=10)
    assert response["status"] == 200
    assert json.loads(response["body"]) == {"status": "ok", "database": "ok"}


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_refuses_websockets_from_foreign_origins():
    communicator = WebsocketCommunicator(
        application, "/ws/anything/", headers=[(b"host", b"127.0.0.1"), (b"origin", b"https://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


class RecordThread:
    """Records the thread each request's middleware chain runs in."""

    threads: list[int] = []

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        RecordThread.threads.append(threading.get_ident())
        return self.get_response(request)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_each_request_runs_its_middleware_view_and_finished_signal_in_one_worker_thread(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.rlhf_platform.test_asgi.RecordThread"]
    handler = SyncChainASGIHandler()
    assert not asyncio.iscoroutinefunction(handler._middleware_chain)
    finished_threads = []

    def on_finished(**_):
        finished_threads.append(threading.get_ident())

    RecordThread.threads.clear()
    request_finished.connect(on_finished)
    try:
        for _ in range(2):
            communicator = HttpCommunicator(handler, "GET", "/healthz", headers=[(b"host", b"127.0.0.1")])
            assert (await communicator.get_response(timeout=10))["status"] == 200
            await communicator.wait(timeout=10)  # the response is closed after it was sent
    finally:
        request_finished.disconnect(on_finished)
    # The finished signal closes the request's database connection: it must run where the view ran.
    assert RecordThread.threads == finished_threads
    assert threading.get_ident() not in RecordThread.threads
    # One request after another: the second borrows the thread the first gave back.
    assert len(set(RecordThread.threads)) == 1


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_sessions_and_csrf_work_through_the_asgi_application(make_user):
    await sync_to_async(make_user)("alice", password="a-long-password-1")
    host = [(b"host", b"127.0.0.1")]
    page = await HttpCommunicator(application, "GET", "/accounts/login/", headers=host).get_response(timeout=10)
    assert page["status"] == 200
    cookie = next(value for name, value in page["headers"] if name == b"Set-Cookie" and value.startswith(b"csrftoken="))
    csrf_cookie = cookie.split(b";")[0]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page["body"]).group(1)
    body = b"username=alice&password=a-long-password-1&csrfmiddlewaretoken=" + token
    form = [*host, (b"cookie", csrf_cookie), (b"content-type", b"application/x-www-form-urlencoded")]

    refused = await HttpCommunicator(
        application, "POST", "/accounts/login/", body=body.replace(token, b"x" * len(token)), headers=form
    ).get_response(timeout=10)
    assert refused["status"] == 403

    signed_in = await HttpCommunicator(application, "POST", "/accounts/login/", body=body, headers=form).get_response(
        timeout=10
    )
    assert signed_in["status"] == 302
    assert any(name == b"Set-Cookie" and value.startswith(b"sessionid=") for name, value in signed_in["headers"])


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_locked_out_sign_in_gets_the_login_page_with_the_message_through_asgi(make_user, settings):
    # django-axes' middleware has an async path of its own (different arguments to the lockout
    # response); the served application must answer as the tests' WSGI client does.
    await sync_to_async(make_user)("alice", password="a-long-password-1")
    host = [(b"host", b"127.0.0.1")]
    page = await HttpCommunicator(application, "GET", "/accounts/login/", headers=host).get_response(timeout=10)
    cookie = next(value for name, value in page["headers"] if name == b"Set-Cookie" and value.startswith(b"csrftoken="))
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page["body"]).group(1)
    form = [*host, (b"cookie", cookie.split(b";")[0]), (b"content-type", b"application/x-www-form-urlencoded")]

    def attempt(password: bytes) -> HttpCommunicator:
        body = b"username=alice&password=" + password + b"&csrfmiddlewaretoken=" + token
        return HttpCommunicator(application, "POST", "/accounts/login/", body=body, headers=form)

    for _ in range(settings.AXES_FAILURE_LIMIT):
        await attempt(b"wrong").get_response(timeout=10)
    locked = await attempt(b"a-long-password-1").get_response(timeout=10)
    assert locked["status"] == 429
    assert b"Too many failed sign-in attempts" in locked["body"]
    assert b'name="username"' in locked["body"]
    assert (b"Retry-After", str(int(settings.AXES_COOLOFF_TIME.total_seconds())).encode()) in locked["headers"]


class CountConcurrentViews:
    """Records how many requests are inside the middleware chain at once."""

    lock = threading.Lock()
    running = 0
    most = 0

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with CountConcurrentViews.lock:
            CountConcurrentViews.running += 1
            CountConcurrentViews.most = max(CountConcurrentViews.most, CountConcurrentViews.running)
        try:
            time.sleep(0.2)
            return self.get_response(request)
        finally:
            with CountConcurrentViews.lock:
                CountConcurrentViews.running -= 1


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("limit", "expected"), [(2, 2), (0, 4)])
async def test_it_runs_at_most_the_configured_number_of_views_at_once(settings, limit, expected):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.rlhf_platform.test_asgi.CountConcurrentViews"]
    settings.ASGI_MAX_CONCURRENT_VIEWS = limit
    handler = SyncChainASGIHandler()
    CountConcurrentViews.most = 0

    async def get() -> int:
        communicator = HttpCommunicator(handler, "GET", "/healthz", headers=[(b"host", b"127.0.0.1")])
        return (await communicator.get_response(timeout=10))["status"]

    assert await asyncio.gather(*(get() for _ in range(4))) == [200] * 4
    assert CountConcurrentViews.most == expected


def test_the_asgi_application_loads_the_views_before_freezing_what_it_loaded(run_django):
    """Objects loaded at start-up, views included, are frozen out of the garbage collector's full passes."""
    code = (
        "import gc, sys\n"
        "import rlhf_platform.asgi\n"
        "print('labeling.api' in sys.modules, 'training.api' in sys.modules, len(gc.get_objects()))\n"
    )
    result = run_django(code=code, DEBUG="1")
    assert result.returncode == 0, result.stderr
    labeling_views, training_views, unfrozen = result.stdout.split()
    assert labeling_views == training_views == "True"
    assert int(unfrozen) < 1_000  # of some 200,000 loaded
