"""Django's ASGI handler, with each request's middleware and view run in one thread hop,
on threads kept from one request to the next.

Under ASGI, Django runs the middleware chain in async mode. Every ``MiddlewareMixin``
middleware (sessions, CSRF, auth, messages, ...) then calls its ``process_request`` and
``process_response`` through ``sync_to_async``, and the sync view through one more: about a
dozen hand-offs between the event loop and a worker thread per request. This app's views
are all sync, so the chain is loaded in sync mode instead and runs in a single
``sync_to_async`` call: same middleware, same thread for the whole request (the one that
also handles ``request_started``/``request_finished``, so database connections are
returned as before), and the event loop keeps reading bodies, streaming responses and
serving websockets.

Django also gives each request a thread of its own, started for it and joined after it.
Here a request borrows an idle one-thread executor instead (asgiref's
``ThreadSensitiveContext(executor=...)``) and gives it back when it is done, so the threads
are started once, up to the number of requests in flight.

At most ``settings.ASGI_MAX_CONCURRENT_VIEWS`` views run at once per process (0: no
limit); other requests wait in arrival order. Measured with ``benchmarks/labeling_load.py``:
see the README.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import weakref
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpRequest, HttpResponseBase
from django.urls import set_script_prefix

from rlhf_platform.body_limits import body_limit_for, too_large_response


class BodyTooLarge(Exception):
    """The request body is over its route's limit (``rlhf_platform.body_limits``)."""


def _declared_length(scope) -> int:
    """The body's ``Content-Length``, 0 when none (or not a number: the body is counted as it comes)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


# Threads beyond this many idle ones are stopped after a burst.
MAX_IDLE_REQUEST_THREADS = 64


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self._idle_request_threads: list[ThreadPoolExecutor] = []
        # One semaphore per event loop (asyncio primitives belong to one loop).
        self._view_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        idle = self._idle_request_threads
        request_thread = idle.pop() if idle else ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        try:
            async with ThreadSensitiveContext(executor=request_thread):
                await self.handle(scope, receive, send)
        finally:
            # A request cancelled mid-view leaves its thread busy; the next borrower waits for it.
            if len(idle) < MAX_IDLE_REQUEST_THREADS:
                idle.append(request_thread)
            else:
                request_thread.shutdown(wait=False)

    async def handle(self, scope, receive, send) -> None:
        """Django's ``ASGIHandler.handle``, with the request's sync work in one thread hop.

        Django hops to the request's thread three times: to send ``request_started``, to run
        the middleware chain and view, and after sending the response, to close it (which sends
        ``request_finished`` and returns the database connection). Here the first two are one
        hop, and a response whose body is already in memory is closed in that hop too, before
        it is sent, as the connection is no longer needed; a streamed response is closed after
        its body has been sent, as before.
        """
        set_script_prefix(get_script_prefix(scope))
        limit = body_limit_for(scope["path"])
        try:
            if _declared_length(scope) > limit:
                raise BodyTooLarge()
            body_file = await self.read_limited_body(receive, limit)
        except RequestAborted:
            return
        except BodyTooLarge:
            response = too_large_response(scope["path"], limit)
            await self.send_response(response, send)
            return
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            await signals.request_started.asend(sender=self.__class__, scope=scope)
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request() -> HttpResponseBase:
            response = await self._respond(scope, request)
            with contextlib.suppress(asyncio.CancelledError):
                await self.send_response(response, send)
            return response

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request()),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            if not response.closed:
                await sync_to_async(response.close)()
        body_file.close()

    async def read_limited_body(self, receive, limit: int):
        """Django's ``read_body``, counting the bytes: past ``limit`` it stops with ``BodyTooLarge``
        (a chunked body declares no length)."""
        body_file = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")  # noqa: SIM115 - returned open, closed by handle()
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                body_file.close()
                raise BodyTooLarge()
            body_file.write(chunk)
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file

    async def _respond(self, scope, request: HttpRequest) -> HttpResponseBase:
        def respond() -> HttpResponseBase:
            signals.request_started.send(sender=self.__class__, scope=scope)
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
            if not response.streaming:
                response.close()
            return response

        limit = settings.ASGI_MAX_CONCURRENT_VIEWS
        if not limit:
            return await sync_to_async(respond, thread_sensitive=True)()
        # Views share the process's interpreter lock. Run at once, they take turns on it and all
        # finish late; a few at a time, with the rest waiting their turn in arrival order, the
        # same work finishes with far shorter tails. Sending a streamed body is not limited.
        loop = asyncio.get_running_loop()
        slots = self._view_slots.get(loop)
        if slots is None:
            slots = self._view_slots[loop] = asyncio.Semaphore(limit)
        async with slots:
            return await sync_to_async(respond, thread_sensitive=True)()
