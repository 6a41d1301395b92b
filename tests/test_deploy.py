"""The deployment examples of deploy/: valid for the tools that read them (where installed here), and
in step with the app's settings (upload limit, websocket path, static folder, stop timeout)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
IMPORT_MAX_MB = 512  # the default of IMPORT_MAX_MB (rlhf_platform/settings.py)


def environment_example() -> dict[str, str]:
    lines = (DEPLOY / "rlhf.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_proxies_take_uploads_as_large_as_imports_and_serve_static_files_from_var_dir():
    environment = environment_example()
    assert int(environment["IMPORT_MAX_MB"]) == IMPORT_MAX_MB
    static_root = f"{environment['VAR_DIR']}/static"
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert f"client_max_body_size {IMPORT_MAX_MB}m;" in nginx
    assert f"alias {static_root}/;" in nginx
    assert re.search(r"location /ws/ \{[^}]*proxy_set_header Upgrade \$http_upgrade;", nginx)
    for header in ("Host $host", "X-Forwarded-Proto $scheme", "X-Forwarded-For $proxy_add_x_forwarded_for"):
        assert nginx.count(f"proxy_set_header {header};") == 2  # the websocket location and the rest
    caddy = (DEPLOY / "Caddyfile").read_text()
    assert f"max_size {IMPORT_MAX_MB}MB" in caddy and f"root * {static_root}" in caddy
    assert environment["SECURE_PROXY_SSL_HEADER"] == "1" and environment["TRUSTED_PROXY_COUNT"] == "1"


def test_the_worker_unit_waits_for_a_checkpoint_and_restarts():
    unit = (DEPLOY / "systemd" / "rlhf-worker.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit, flags=re.MULTILINE))
    assert settings["KillSignal"] == "SIGTERM"
    assert int(settings["TimeoutStopSec"]) >= 120
    assert settings["Restart"] == "always"
    assert settings["ExecStart"].endswith("manage.py worker")
    procfile = (DEPLOY / "Procfile").read_text()
    assert re.search(r"^web: .*uvicorn rlhf_platform\.asgi:application", procfile, flags=re.MULTILINE)
    assert re.search(r"^worker: .*manage\.py worker$", procfile, flags=re.MULTILINE)


def test_nginx_accepts_the_example(tmp_path):
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
         "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    site = (DEPLOY / "nginx.conf").read_text()
    site = re.sub(r"ssl_certificate .*;", f"ssl_certificate {tmp_path / 'cert.pem'};", site)
    site = re.sub(r"ssl_certificate_key .*;", f"ssl_certificate_key {tmp_path / 'key.pem'};", site)
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        f"http {{ include {tmp_path / 'site.conf'}; }}\n"
    )
    checked = subprocess.run(["nginx", "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_caddy_accepts_the_example():
    if shutil.which("caddy") is None:
        pytest.skip("caddy is not installed")
    checked = subprocess.run(
        ["caddy", "validate", "--adapter", "caddyfile", "--config", str(DEPLOY / "Caddyfile")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


def test_systemd_accepts_the_units():
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    units = sorted(str(path) for path in (DEPLOY / "systemd").glob("*.service"))
    checked = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
    # The units name the install's paths (/srv/rlhf/.venv), which do not exist on this machine.
    problems = [line for line in checked.stderr.splitlines() if line and "is not executable" not in line]
    assert problems == []
    assert Path(units[0]).name == "rlhf-web.service"
