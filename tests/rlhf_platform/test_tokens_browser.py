"""The token page in a real Chromium: create a token, see its key once, revoke it."""

import pytest

from rlhf_platform.models import ApiToken
from rlhf_platform.roles import Role

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_see_the_key_once_and_revoke(make_user, signed_in_page, live_server, tmp_path):
    make_user("rita", role=Role.REVIEWER)
    page = signed_in_page("rita")
    page.click("nav >> text=API tokens")
    page.wait_for_selector("#id_name")
    page.fill("#id_name", "my script")
    page.select_option("#id_expires_in_days", "7")
    page.click("#create-token button[type=submit]")
    page.wait_for_selector(".new-key code")

    key = page.locator(".new-key code").inner_text().strip()
    token = ApiToken.objects.get(user__username="rita")
    assert key.startswith(token.prefix)
    assert token.expires_at is not None
    assert "my script" in page.locator(".tokens").inner_text()
    page.screenshot(path=str(tmp_path / "tokens-created.png"), full_page=True)

    # Reloading the list never shows the key again.
    page.goto(f"{live_server.url}/account/tokens/")
    assert key not in page.content()

    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"#token-{token.pk} button:has-text('Revoke')")
    page.wait_for_selector(f"#token-{token.pk} .status-revoked")
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert page.js_errors == []
