"""The README's "Serving in production" block, run as written on a fresh database and VAR_DIR.

The block between the README's ``production-recipe`` markers is extracted and run by bash with only
its placeholders replaced (secret key, host, PostgreSQL database, Redis, VAR_DIR, port, and where
the virtual environment is): migrate, collectstatic, uvicorn with two workers, and the worker.
The first manager is made with the README's ``first-manager`` block. Then, as a TLS proxy would
(``X-Forwarded-Proto: https``), the test signs in through the login page, loads its stylesheet, a
finished run's page, and opens the run's websocket, which must send the run's state.

Needs PostgreSQL (``DATABASE_URL``; skipped without it, as on the SQLite pass) and Redis
(``TEST_REDIS_URL``; skipped without it, failed without it when ``REQUIRE_REDIS=1``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import dj_database_url
import psycopg
import pytest
import websockets

from tests.conftest import REPO_ROOT, clean_environment
from tests.servers import free_port, wait_for

README = REPO_ROOT / "README.md"
CREATE_RUN = """
from training.models import JobStatus, ModelArtifact, Round, Stage, TrainingRun
model = ModelArtifact.objects.create(name="recipe-base", path="/nonexistent")
training_round = Round.objects.create(name="Recipe round", preset=Round.Preset.SINGLE, base_model=model)
run = TrainingRun.objects.create(round=training_round, stage=Stage.SFT, input_model=model, status=JobStatus.SUCCEEDED)
print(run.pk)
"""


def readme_block(name: str) -> str:
    """The shell block between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in the README."""
    found = re.search(
        rf"<!-- {name}:start -->\s*```sh\n(.*?)```\s*<!-- {name}:end -->", README.read_text(), flags=re.DOTALL
    )
    assert found, f"README.md has no ```sh block between <!-- {name}:start --> and <!-- {name}:end -->"
    return found[1]


def substitute(block: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        assert block.count(placeholder) >= 1, f"the README's block no longer has {placeholder!r}"
        block = block.replace(placeholder, value)
    return block


def exports(block: str) -> str:
    """The block's leading `export` statement (with its continuation lines)."""
    lines = block.splitlines()
    end = next(i for i, line in enumerate(lines) if not line.rstrip().endswith("\\"))
    assert lines[0].startswith("export "), "the production block starts with its export statement"
    return "\n".join(lines[: end + 1])


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail("REQUIRE_REDIS=1 but TEST_REDIS_URL is not set")
        pytest.skip("TEST_REDIS_URL is not set (a Redis server for the production recipe)")
    return url


@pytest.fixture
def scratch_database() -> str:
    """A new, empty PostgreSQL database next to the suite's, dropped afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        pytest.skip("the production recipe runs on PostgreSQL: set DATABASE_URL")
    parsed = dj_database_url.parse(url)
    name = f"{parsed['NAME']}_recipe"
    admin = {k: parsed[k.upper()] for k in ("host", "port", "user", "password")}
    with psycopg.connect(**admin, dbname="postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    yield urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path=f"/{name}"))
    with psycopg.connect(**admin, dbname="postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Browser:
    """Requests as a browser behind the TLS proxy sends them: HTTPS said by X-Forwarded-Proto, and the
    cookies kept by hand (they are Secure, which urllib's cookie jar never sends over http)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies: dict[str, str] = {}

    def request(self, path: str, data: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
        headers = {"X-Forwarded-Proto": "https", "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if data is not None:
            body = urllib.parse.urlencode(data).encode()
            host = urllib.parse.urlsplit(self.base_url).netloc
            headers |= {"Origin": f"https://{host}", "Content-Type": "application/x-www-form-urlencoded"}
        opener = urllib.request.build_opener(NoRedirect)
        try:
            response = opener.open(urllib.request.Request(self.base_url + path, data=body, headers=headers), timeout=30)
        except urllib.error.HTTPError as error:
            response = error
        for header in response.headers.get_all("Set-Cookie") or []:
            name, value = header.split(";", 1)[0].split("=", 1)
            self.cookies[name] = value
        return response.status, response.headers, response.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


async def first_message(url: str, cookie: str, origin: str) -> dict:
    async with websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": origin}) as socket:
        return json.loads(await asyncio.wait_for(socket.recv(), timeout=20))


def test_the_readme_production_block_serves_the_login_page_and_a_live_run(scratch_database, redis_url, tmp_path):
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    var_dir = tmp_path / "var"
    values = {
        "SECRET_KEY=...": f"SECRET_KEY={secrets.token_urlsafe(50)}",
        "ALLOWED_HOSTS=rlhf.example.com": "ALLOWED_HOSTS=127.0.0.1",
        "DATABASE_URL=postgres://...": f"DATABASE_URL={scratch_database}",
        "REDIS_URL=redis://127.0.0.1:6379/0": f"REDIS_URL={redis_url}",
        "VAR_DIR=/var/lib/rlhf": f"VAR_DIR={var_dir}",
        "--port 8000": f"--port {port}",
        ".venv/bin/": f"{Path(sys.executable).parent}/",
    }
    recipe = substitute(readme_block("production-recipe"), values)
    password = secrets.token_urlsafe(16)
    environment = clean_environment(ADMIN_PASSWORD=password)
    log_path = tmp_path / "recipe.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["bash", "-euc", recipe], cwd=REPO_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(f"{base_url}/healthz", timeout=120)
        first_manager = (
            exports(recipe) + "\n" + substitute(readme_block("first-manager"), {".venv/bin/": values[".venv/bin/"]})
        )
        made = subprocess.run(["bash", "-euc", first_manager], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert made.returncode == 0, made.stderr
        shell = exports(recipe) + f"\n{values['.venv/bin/']}python manage.py shell -c '{CREATE_RUN}'"
        created = subprocess.run(["bash", "-euc", shell], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert created.returncode == 0, created.stderr
        run_id = int(created.stdout.strip().splitlines()[-1])

        browser = Browser(base_url)
        status, _, body = browser.request("/accounts/login/")
        assert status == 200, body[:500]
        html = body.decode()
        stylesheet = re.search(r'href="(/static/rlhf_platform/app\.[0-9a-f]{12}\.css)"', html)[1]
        css_status, css_headers, css = browser.request(stylesheet)
        assert css_status == 200 and css_headers["Content-Type"].startswith("text/css") and b".topbar" in css
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)[1]
        status, _, body = browser.request(
            "/accounts/login/", {"username": "admin", "password": password, "csrfmiddlewaretoken": token}
        )
        assert status == 302, body[:2000]
        status, _, body = browser.request(f"/training/runs/{run_id}/")
        assert status == 200 and b"Recipe round" in body

        cookie = f"sessionid={browser.cookies['sessionid']}"
        message = asyncio.run(
            first_message(f"ws://127.0.0.1:{port}/ws/training/runs/{run_id}/", cookie, f"https://127.0.0.1:{port}")
        )
        assert message["type"] == "runs"
        assert [(run["id"], run["status"]) for run in message["runs"]] == [(run_id, "succeeded")]
        assert (var_dir / "instance-id").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    log = log_path.read_text()
    assert "waiting for work" in log, log  # the worker started: it saw the server's VAR_DIR
    assert "Application startup complete" in log and "lifespan' protocol appears unsupported" not in log, log
    assert "synchronous iterators" not in log and "Traceback" not in log, log
