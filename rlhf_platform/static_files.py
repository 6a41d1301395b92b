"""Static files, served in front of Django by ServeStatic (WhiteNoise's ASGI-aware successor).

Under ASGI, WhiteNoise's middleware answered with a response over a synchronous file iterator,
which Django can only stream by hopping to a thread for every chunk, and warned about the first
time each process did. ServeStatic's ASGI application serves the files itself, asynchronously,
before a request reaches Django's middleware: no thread hop, no session or database work for a
stylesheet. Its Django middleware would instead turn this project's synchronous middleware chain
(rlhf_platform/asgi_handler.py) async for every request, the reviewer loop's included.

With DEBUG off, the files are those `collectstatic` put in STATIC_ROOT (hashed names, compressed
copies), cached for a year by browsers; a reverse proxy may serve STATIC_ROOT itself (deploy/).
With DEBUG on (`make demo`), they are read from the apps' static/ folders on each request, with
no collectstatic, and never cached.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from servestatic import ServeStatic, ServeStaticASGI

# ManifestStaticFilesStorage names a file after the first 12 hex digits of its MD5.
HASHED_NAME = re.compile(r"^.+\.[0-9a-f]{12}\.[^/]+$")
YEAR_S = 365 * 24 * 3600


def _nosniff(headers, path: str, url: str) -> None:
    # As Django's SecurityMiddleware does for its own answers, which these never pass through.
    headers["X-Content-Type-Options"] = "nosniff"


def _options() -> dict[str, Any]:
    common = {"add_headers_function": _nosniff, "allow_all_origins": False}
    if settings.DEBUG:
        return {**common, "autorefresh": True, "max_age": 0}
    return {
        **common,
        "max_age": YEAR_S,
        "immutable_file_test": lambda path, url: bool(HASHED_NAME.match(url)),
    }


def _add_folders(server: ServeStatic | ServeStaticASGI) -> None:
    if settings.DEBUG:
        # What Django's AppDirectoriesFinder finds, without collectstatic.
        for config in apps.get_app_configs():
            folder = Path(config.path) / "static"
            if folder.is_dir():
                server.add_files(str(folder), prefix=settings.STATIC_URL)
    else:
        server.add_files(str(settings.STATIC_ROOT), prefix=settings.STATIC_URL)


def static_files_asgi(application):
    """``application`` behind the static files (HTTP requests under STATIC_URL)."""
    server = ServeStaticASGI(application, **_options())
    _add_folders(server)
    return server


def static_files_wsgi(application):
    server = ServeStatic(application, **_options())
    _add_folders(server)
    return server
