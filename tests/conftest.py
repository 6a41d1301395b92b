from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from rlhf_platform.roles import Role

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    """Remove a SQLite test database's stale WAL files left by a killed run before it is recreated.

    A new database file beside an old ``-wal`` file fails with "disk I/O error".
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        for suffix in ("-wal", "-shm"):
            Path(database["TEST"]["NAME"] + suffix).unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    # The real hasher is slow on purpose; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def data_jobs_dir(settings, tmp_path) -> Path:
    """Each test's own place for stored uploads and progress files of data jobs."""
    settings.DATA_JOBS_DIR = tmp_path / "data-jobs"
    return settings.DATA_JOBS_DIR


@pytest.fixture
def make_user(db) -> Callable:
    user_model = get_user_model()

    def make(username: str, *, role: Role | None = None, password: str = "correct horse battery", **fields):
        user = user_model.objects.create_user(username=username, password=password, **fields)
        if role is not None:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        return user

    return make


@pytest.fixture
def manager(make_user):
    return make_user("mia-manager", role=Role.MANAGER)


@pytest.fixture
def reviewer(make_user):
    return make_user("rex-reviewer", role=Role.REVIEWER)


@pytest.fixture
def manager_client(manager) -> Client:
    client = Client()
    client.force_login(manager)
    return client


@pytest.fixture
def reviewer_client(reviewer) -> Client:
    client = Client()
    client.force_login(reviewer)
    return client


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def manager_api(manager) -> APIClient:
    """An API client signed in as the manager."""
    client = APIClient()
    client.force_authenticate(manager)
    return client


def clean_environment(**overrides: str) -> dict[str, str]:
    """The process environment without any of the app's own settings, plus ``overrides``."""
    app_variables = {
        "DEBUG",
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "ALLOWED_HOSTS",
        "VAR_DIR",
        "HF_HUB_OFFLINE",
        "DJANGO_SETTINGS_MODULE",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    }
    environment = {
        k: v for k, v in os.environ.items() if k not in app_variables and not k.startswith(("SECURE_", "DEMO_"))
    }
    environment.update(overrides)
    return environment


@pytest.fixture
def run_django(tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``manage.py`` or a Python snippet in a fresh interpreter with a clean environment.

    Settings are read once at start-up, so testing how they parse needs a new process.
    VAR_DIR defaults to a temporary directory so nothing touches the checkout's var/.
    """

    def run(*args: str, code: str | None = None, **env: str) -> subprocess.CompletedProcess:
        environment = clean_environment(VAR_DIR=str(tmp_path / "var"), **env)
        command = [sys.executable, "-c", code] if code is not None else [sys.executable, "manage.py", *args]
        return subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120)

    return run


# --- real browser ------------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium driven by Playwright. CI sets REQUIRE_BROWSER=1 so it is never skipped there."""
    if not CHROMIUM.exists():
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # beside it are safe (nothing else runs here), so Django's async guard is switched off.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def browser_page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors
    yield page
    context.close()


@pytest.fixture
def signed_in_page(browser_page, live_server):
    """Signs a user in through the real login form; returns a function(user, password) -> page."""

    def sign_in(username: str, password: str = "correct horse battery"):
        browser_page.goto(f"{live_server.url}/accounts/login/")
        browser_page.fill("#id_username", username)
        browser_page.fill("#id_password", password)
        browser_page.click("button.primary")
        browser_page.wait_for_load_state()
        return browser_page

    return sign_in
