"""In a real Chromium: a manager invites a reviewer, puts them in a team and adds the team to a
campaign's pool; the reviewer opens the link, chooses a password, is signed in, and signs in again."""

import os
from pathlib import Path

import pytest

from rlhf_platform.roles import Role
from tests.labeling.factories import make_campaign, pairwise_rows

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a long and fine passphrase"


def shots_dir(tmp_path: Path) -> Path:
    # SCREENSHOTS_DIR keeps them for a look by eye; otherwise they go with the test's temporary files.
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_invite_set_password_and_sign_in(make_user, signed_in_page, chromium, live_server, tmp_path):
    shots = shots_dir(tmp_path)
    manager = make_user("mona", role=Role.MANAGER)
    make_user("rex", role=Role.REVIEWER)
    campaign = make_campaign(manager=manager, reviewers=[], tasks=pairwise_rows(2))
    page = signed_in_page("mona")
    violations: list[str] = []
    page.on("console", lambda message: "Content Security Policy" in message.text and violations.append(message.text))

    page.click("nav >> text=People")
    page.fill("#id_username", "nora")
    page.fill("#id_email", "nora@example.com")
    page.click("#invite button[type=submit]")
    page.wait_for_selector("#new-link")
    link = page.locator("#new-link").inner_text().strip()
    assert link.startswith(f"{live_server.url}/accounts/set-password/")
    assert "invited" in page.locator("#person-" + str(_pk("nora"))).inner_text().lower()
    page.screenshot(path=str(shots / "people-invited.png"), full_page=True)

    page.click("text=Teams")
    page.fill("#id_name", "Night shift")
    page.click("#create-team button[type=submit]")
    page.check("input[name=members][value=nora]")
    page.check("input[name=members][value=rex]")
    page.click("#team-members button[type=submit]")
    page.wait_for_selector("text=2 members")
    page.goto(f"{live_server.url}/manage/campaigns/{campaign.slug}/reviewers/")
    assert page.locator("#pool-team option").inner_text() == "Night shift: adds its 2 current reviewers"
    page.click("#add-team button[type=submit]")
    page.wait_for_selector("text=Added 2 reviewers: nora, rex.")
    page.screenshot(path=str(shots / "pool-team-added.png"), full_page=True)
    assert sorted(campaign.reviewers.values_list("username", flat=True)) == ["nora", "rex"]

    invitee = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    invitee.goto(link)
    invitee.wait_for_selector("text=Choose your password")
    assert "/set-password/" in invitee.url and link.rstrip("/").rsplit("/", 1)[1] not in invitee.url
    invitee.fill("#id_new_password1", "nora")
    invitee.fill("#id_new_password2", "nora")
    invitee.click("button.primary")
    invitee.wait_for_selector(".field-errors")
    invitee.screenshot(path=str(shots / "set-password-refused.png"), full_page=True)
    invitee.fill("#id_new_password1", PASSWORD)
    invitee.fill("#id_new_password2", PASSWORD)
    invitee.click("button.primary")
    invitee.wait_for_url(f"{live_server.url}/review/")
    assert "nora" in invitee.locator(".who").inner_text()
    invitee.screenshot(path=str(shots / "set-password-done.png"), full_page=True)

    invitee.goto(link)
    invitee.wait_for_selector("text=This link does not work")
    invitee.context.clear_cookies()
    invitee.goto(f"{live_server.url}/accounts/login/")
    invitee.fill("#id_username", "nora")
    invitee.fill("#id_password", PASSWORD)
    invitee.click("button.primary")
    invitee.wait_for_url(f"{live_server.url}/review/")
    invitee.context.close()
    assert violations == [] and page.js_errors == []


def _pk(username: str) -> int:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username).pk
