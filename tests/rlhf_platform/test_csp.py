"""A Content-Security-Policy on every answer: scripts and styles from this origin, or inline with the
request's nonce; no template relies on what the policy refuses (style attributes, inline handlers,
inline scripts or styles without the nonce)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT
from tests.labeling.factories import make_campaign, pairwise_rows

pytestmark = pytest.mark.django_db

NONCE = re.compile(r"'nonce-([A-Za-z0-9+/=]+)'")


def directives(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


def test_pages_and_the_api_send_the_policy(manager_client):
    for url in ("/manage/", "/training/", "/api/me/", "/accounts/login/"):
        policy = directives(manager_client.get(url))

        assert policy["default-src"] == "'self'"
        assert policy["script-src"].startswith("'self'")
        assert "unsafe-inline" not in policy["script-src"] + policy["style-src"]
        assert policy["object-src"] == "'none'"
        assert policy["frame-ancestors"] == "'none'"


def test_the_workspace_styles_its_code_with_this_requests_nonce(manager, reviewer, reviewer_client):
    campaign = make_campaign(manager=manager, reviewers=[reviewer], tasks=pairwise_rows(1))

    first = reviewer_client.get(f"/review/{campaign.slug}/")
    second = reviewer_client.get(f"/review/{campaign.slug}/")

    nonce = NONCE.search(directives(first)["style-src"]).group(1)
    assert f'<style nonce="{nonce}">' in first.content.decode()
    assert NONCE.search(directives(second)["style-src"]).group(1) != nonce


def test_the_api_docs_page_runs_under_the_policy(manager_client):
    page = manager_client.get("/api/docs/")

    nonce = NONCE.search(directives(page)["style-src"]).group(1)
    html = page.content.decode()
    assert f'<style nonce="{nonce}">' in html
    assert re.findall(r"<script(?![^>]*\ssrc=)[^>]*>", html) == []  # its set-up script is a file too
    assert manager_client.get("/api/docs/?script=").status_code == 200


def test_no_template_relies_on_what_the_policy_refuses():
    refused = {
        "a style attribute": re.compile(r"\sstyle=\""),
        "an inline event handler": re.compile(r"<[^>]+\son[a-z]+=", re.IGNORECASE),
        "an inline script without the nonce": re.compile(
            r"<script(?![^>]*\ssrc=)(?![^>]*\snonce=)(?![^>]*type=\"application/json\")[^>]*>"
        ),
        "an inline style element without the nonce": re.compile(r"<style(?![^>]*\snonce=)[^>]*>"),
        "a javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
    }
    found = [
        f"{template.relative_to(REPO_ROOT)}: {what}"
        for template in (REPO_ROOT / "templates").rglob("*.html")
        for what, pattern in refused.items()
        if pattern.search(template.read_text())
    ]

    assert found == []
