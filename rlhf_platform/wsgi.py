"""WSGI entry point. The product is served over ASGI (websockets); WSGI serves plain HTTP only."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")

application = get_wsgi_application()

from rlhf_platform.static_files import static_files_wsgi  # noqa: E402 (after Django is set up)

application = static_files_wsgi(application)
