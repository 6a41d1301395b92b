"""ASGI entry point: Django for HTTP, Channels for websockets."""

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
# Django must be set up before anything imports models, so this comes first.
django.setup(set_prefix=False)

from rlhf_platform.asgi_handler import SyncChainASGIHandler  # noqa: E402

django_asgi_application = SyncChainASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from rlhf_platform.routing import websocket_urlpatterns  # noqa: E402
from rlhf_platform.static_files import static_files_asgi  # noqa: E402


async def lifespan(scope, receive, send) -> None:
    """The ASGI lifespan protocol, answered: nothing to set up or tear down (connections and threads
    start on demand), but uvicorn otherwise logs that the protocol "appears unsupported"."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


application = static_files_asgi(
    ProtocolTypeRouter(
        {
            "http": django_asgi_application,
            # Session authentication, and only pages served from ALLOWED_HOSTS may open a socket.
            "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
            "lifespan": lifespan,
        }
    )
)

# The URLconf and every view module it names load on the first request otherwise; loaded now,
# they are frozen with the rest below.
get_resolver().url_patterns  # noqa: B018 (loading is the point)

# What is loaded by now (Django, the apps, the views and what they import) lives as long as
# the process. Frozen, the garbage collector's full passes skip it: some 200,000 objects,
# whose traversal otherwise holds the worker's interpreter lock, and so stalls every request
# in it, for 100 ms or more each time a full pass runs (measured in a worker with gc.callbacks
# under benchmarks/labeling_load.py).
gc.freeze()
