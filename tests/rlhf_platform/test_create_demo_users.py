import io

from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import RequestFactory

from rlhf_platform.roles import user_is_manager, user_is_reviewer


def signs_in(username: str, password: str) -> bool:
    # Sign-in throttling (django-axes) needs the request, as every real sign-in has.
    return authenticate(RequestFactory().post("/accounts/login/"), username=username, password=password) is not None


def run_command() -> str:
    out = io.StringIO()
    call_command("create_demo_users", stdout=out)
    return out.getvalue()


def test_it_creates_a_manager_and_two_reviewers_with_printed_passwords(db, monkeypatch):
    monkeypatch.delenv("DEMO_MANAGER_PASSWORD", raising=False)
    monkeypatch.delenv("DEMO_REVIEWER_PASSWORD", raising=False)
    output = run_command()
    users = {u.username: u for u in get_user_model().objects.all()}
    assert set(users) == {"manager", "reviewer1", "reviewer2"}
    assert user_is_manager(users["manager"])
    assert user_is_reviewer(users["reviewer1"]) and user_is_reviewer(users["reviewer2"])
    for line in output.strip().splitlines():
        username, password = line.split()[1], line.split("password: ")[1].split()[0]
        assert signs_in(username, password)


def test_it_shows_passwords_only_once(db, monkeypatch):
    monkeypatch.delenv("DEMO_MANAGER_PASSWORD", raising=False)
    monkeypatch.delenv("DEMO_REVIEWER_PASSWORD", raising=False)
    run_command()
    second = run_command()
    assert "password:" not in second
    assert second.count("exists, password unchanged") == 3
    assert get_user_model().objects.count() == 3


def test_it_takes_passwords_from_the_environment_without_printing_them(db, monkeypatch):
    monkeypatch.setenv("DEMO_MANAGER_PASSWORD", "manager secret phrase")
    monkeypatch.setenv("DEMO_REVIEWER_PASSWORD", "reviewer secret phrase")
    output = run_command()
    assert "secret phrase" not in output
    assert "password from DEMO_MANAGER_PASSWORD" in output
    assert signs_in("manager", "manager secret phrase")
    assert signs_in("reviewer2", "reviewer secret phrase")

    monkeypatch.setenv("DEMO_MANAGER_PASSWORD", "rotated manager phrase")
    run_command()
    assert signs_in("manager", "rotated manager phrase")
