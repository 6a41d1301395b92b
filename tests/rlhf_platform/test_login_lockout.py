"""Repeated wrong passwords lock a username out of the login page and the token endpoint, for a
cool-off window, even with the right password afterwards; other users are not affected."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

PASSWORD = "a long passphrase"


def _sign_in(client: Client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


def _obtain_token(api_client, username: str, password: str):
    return api_client.post(reverse("api-token"), {"username": username, "password": password}, format="json")


def _let_the_cool_off_pass(settings) -> None:
    # Moves the recorded attempts back in time rather than the clock: axes counts attempts newer
    # than the cool-off window, so this is what the passing of time does to them.
    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))


def test_it_refuses_the_right_password_after_30_wrong_ones_on_the_login_page(make_user, settings):
    make_user("rita", password=PASSWORD)
    client = Client()
    for _ in range(30):
        assert _sign_in(client, "rita", "wrong").status_code in (200, 429)

    response = _sign_in(client, "rita", PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    html = response.content.decode()
    assert "Too many failed sign-in attempts" in html
    cool_off_s = int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert f"{cool_off_s // 60} minutes" in html
    # The page is the login page with a message, not a bare error page.
    assert 'name="username"' in html
    assert response["Retry-After"] == str(cool_off_s)


def test_it_locks_out_at_the_limit_and_not_before(make_user, settings):
    make_user("rita", password=PASSWORD)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(client, "rita", "wrong").status_code == 200
    assert _sign_in(client, "rita", "wrong").status_code == 429
    assert _sign_in(client, "rita", PASSWORD).status_code == 429


def test_the_right_password_works_again_after_the_cool_off(make_user, settings):
    make_user("rita", password=PASSWORD)
    client = Client()
    for _ in range(30):
        _sign_in(client, "rita", "wrong")
    assert _sign_in(client, "rita", PASSWORD).status_code == 429

    _let_the_cool_off_pass(settings)
    response = _sign_in(client, "rita", PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"]


def test_a_locked_out_user_does_not_lock_out_others(make_user):
    make_user("rita", password=PASSWORD)
    make_user("otto", password=PASSWORD)
    client = Client()
    for _ in range(30):
        _sign_in(client, "rita", "wrong")

    # Same browser, same address: only the attacked username is locked.
    response = _sign_in(client, "otto", PASSWORD)
    assert response.status_code == 302


def test_the_lockout_holds_for_the_username_from_that_address_only(make_user):
    # An attacker elsewhere must not lock a user out of their own desk.
    make_user("rita", password=PASSWORD)
    for _ in range(30):
        _sign_in(Client(REMOTE_ADDR="203.0.113.9"), "rita", "wrong")
    assert _sign_in(Client(REMOTE_ADDR="203.0.113.9"), "rita", PASSWORD).status_code == 429
    assert _sign_in(Client(REMOTE_ADDR="198.51.100.7"), "rita", PASSWORD).status_code == 302


def test_a_successful_sign_in_resets_the_count(make_user, settings):
    make_user("rita", password=PASSWORD)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in(client, "rita", "wrong")
    assert _sign_in(client, "rita", PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(client, "rita", "wrong").status_code == 200
    assert _sign_in(client, "rita", PASSWORD).status_code == 302


def test_the_token_endpoint_refuses_the_right_password_after_30_wrong_ones(api_client, make_user, settings):
    make_user("bot", password=PASSWORD)
    for _ in range(30):
        assert _obtain_token(api_client, "bot", "wrong").status_code in (400, 429)

    response = _obtain_token(api_client, "bot", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.json()["detail"]
    assert "token" not in response.json()
    assert response["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))


def test_the_token_endpoint_works_again_after_the_cool_off(api_client, make_user, settings):
    make_user("bot", password=PASSWORD)
    for _ in range(30):
        _obtain_token(api_client, "bot", "wrong")
    _let_the_cool_off_pass(settings)
    response = _obtain_token(api_client, "bot", PASSWORD)
    assert response.status_code == 200
    assert response.json()["token"]


def test_the_login_page_and_the_token_endpoint_share_one_count(api_client, make_user, settings):
    make_user("bot", password=PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(Client(), "bot", "wrong")
    assert _obtain_token(api_client, "bot", PASSWORD).status_code == 429


def test_a_token_obtained_with_the_password_resets_the_count(api_client, make_user, settings):
    make_user("bot", password=PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _obtain_token(api_client, "bot", "wrong")
    assert _obtain_token(api_client, "bot", PASSWORD).status_code == 200
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _obtain_token(api_client, "bot", "wrong").status_code == 400
    assert _obtain_token(api_client, "bot", PASSWORD).status_code == 200


def test_the_limit_and_cool_off_come_from_the_environment(run_django):
    result = run_django(
        code=(
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.AXES_FAILURE_LIMIT, int(settings.AXES_COOLOFF_TIME.total_seconds()))"
        ),
        DEBUG="1",
        LOGIN_FAILURE_LIMIT="7",
        LOGIN_COOLOFF_MINUTES="3",
        DJANGO_SETTINGS_MODULE="rlhf_platform.settings",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7", "180"]


def test_behind_a_trusted_proxy_each_client_address_counts_on_its_own(make_user, settings):
    """With TRUSTED_PROXY_COUNT set, the address past the proxy (X-Forwarded-For) is the client's:
    someone elsewhere hammering a username does not lock its owner out."""
    settings.TRUSTED_PROXY_COUNT = 1
    make_user("rita", password=PASSWORD)
    # The proxy appends the address it saw; what the attacker put first is not believed.
    attacker = Client(HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.5", REMOTE_ADDR="10.0.0.1")
    owner = Client(HTTP_X_FORWARDED_FOR="198.51.100.7", REMOTE_ADDR="10.0.0.1")
    for _ in range(settings.AXES_FAILURE_LIMIT + 3):
        _sign_in(attacker, "rita", "wrong")

    assert _sign_in(attacker, "rita", PASSWORD).status_code == 429
    assert _sign_in(owner, "rita", PASSWORD).status_code == 302
