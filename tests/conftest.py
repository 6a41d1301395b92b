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


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    # The real hasher is slow on purpose; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(db) -> Callable:
    user_model = get_user_model()

    def make(username: str, *, role: Role | None = None, password: str = "correct horse battery", **fields):
        user = user_model.objects.create_user(username=username, password=password, **fields)
        if role is not None:
            user.groups.add(Group.objects.get(name=role))
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
