"""uvicorn, as the README's production block runs it: DEBUG off, collected static files, several
workers. It starts without noise (no lifespan complaint, no warning about static files served from
a synchronous iterator) and serves the login page and its hashed, compressed, long-cached stylesheet."""

import gzip
import re
import subprocess
import sys
import urllib.request

from tests.conftest import REPO_ROOT, clean_environment
from tests.servers import free_port, serving

NOISE = ("lifespan", "synchronous iterators", "Traceback", "WARNING")


def test_uvicorn_serves_pages_and_static_files_quietly(tmp_path):
    environment = clean_environment(
        DEBUG="0",
        SECRET_KEY="uvicorn-test-" + "k" * 50,
        VAR_DIR=str(tmp_path / "var"),
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
    )
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        done = subprocess.run(
            [sys.executable, "manage.py", *command], cwd=REPO_ROOT, env=environment, capture_output=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    uvicorn = [sys.executable, "-m", "uvicorn", "rlhf_platform.asgi:application", "--host", "127.0.0.1"]
    log_path = tmp_path / "uvicorn.log"
    command = [*uvicorn, "--port", str(port), "--workers", "2", "--no-access-log"]
    with serving([command], environment=environment, log_path=log_path, ready_url=f"{base_url}/healthz"):
        with urllib.request.urlopen(f"{base_url}/accounts/login/") as response:
            html = response.read().decode()
        stylesheet = re.search(r'href="(/static/rlhf_platform/app\.[0-9a-f]{12}\.css)"', html)[1]
        for _ in range(4):  # each worker process serves it at least once, most likely
            request = urllib.request.Request(base_url + stylesheet, headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(request) as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/css")
                assert "immutable" in response.headers["Cache-Control"]
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert response.headers["Content-Encoding"] == "gzip"
                assert b".topbar" in gzip.decompress(response.read())
    log = log_path.read_text()
    assert "Application startup complete" in log
    assert not [line for line in log.splitlines() if any(noise in line for noise in NOISE)], log
