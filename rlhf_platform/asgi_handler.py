"""Django's ASGI handler, with each request's middleware and view run in one thread hop.

Under ASGI, Django runs the middleware chain in async mode. Every ``MiddlewareMixin``
middleware (sessions, CSRF, auth, messages, ...) then calls its ``process_request`` and
``process_response`` through ``sync_to_async``, and the sync view through one more: about a
dozen hand-offs between the event loop and a worker thread per request. This app's views
are all sync, so the chain is loaded in sync mode instead and runs in a single
``sync_to_async`` call: same middleware, same thread for the whole request (the one that
also handles ``request_started``/``request_finished``, so database connections are
returned as before), and the event loop keeps reading bodies, streaming responses and
serving websockets. Measured with ``benchmarks/labeling_load.py``: see the README.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase


class SyncChainASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
