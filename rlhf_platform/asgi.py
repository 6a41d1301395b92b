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

from rlhf_platform.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_application,
        # Session authentication, and only pages served from ALLOWED_HOSTS may open a socket.
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# What is loaded by now (Django, the apps, their modules) lives as long as the process. Frozen,
# the garbage collector's full passes skip it: about 100,000 objects, whose traversal
# otherwise stalls every request of the worker for some 40 ms each time a full pass runs.
gc.freeze()
