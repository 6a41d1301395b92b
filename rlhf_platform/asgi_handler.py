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
import weakref
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase

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

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        limit = settings.ASGI_MAX_CONCURRENT_VIEWS
        if not limit:
            return await sync_to_async(self.get_response, thread_sensitive=True)(request)
        # Views share the process's interpreter lock. Run at once, they take turns on it and all
        # finish late; a few at a time, with the rest waiting their turn in arrival order, the
        # same work finishes with far shorter tails. Sending a streamed body is not limited.
        loop = asyncio.get_running_loop()
        slots = self._view_slots.get(loop)
        if slots is None:
            slots = self._view_slots[loop] = asyncio.Semaphore(limit)
        async with slots:
            return await sync_to_async(self.get_response, thread_sensitive=True)(request)
