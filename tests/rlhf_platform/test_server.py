"""The production-like server that `make demo` starts: daphne over the ASGI application."""

import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import REPO_ROOT, clean_environment
from tests.servers import daphne


@pytest.fixture
def daphne_server(tmp_path):
    environment = clean_environment(DEBUG="1", VAR_DIR=str(tmp_path / "var"))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO_ROOT,
        env=environment,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with daphne(environment=environment, log_path=tmp_path / "daphne.log") as base_url:
        yield base_url


def test_it_serves_the_login_page_and_its_stylesheet(daphne_server):
    with urllib.request.urlopen(f"{daphne_server}/accounts/login/") as response:
        assert response.status == 200
        assert "Sign in" in response.read().decode()
    with urllib.request.urlopen(f"{daphne_server}/static/rlhf_platform/app.css") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/css")


def test_it_redirects_anonymous_visitors_to_login(daphne_server):
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(f"{daphne_server}/")
    assert redirect.value.code == 302
    assert redirect.value.headers["Location"] == "/accounts/login/?next=/"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
