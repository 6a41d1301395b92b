"""WSGI entry point. The product is served over ASGI (websockets); WSGI serves plain HTTP only."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")

application = get_wsgi_application()
