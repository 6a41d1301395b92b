"""`manage.py create_user`: the first manager of an instance, and people made by scripts."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from rlhf_platform.roles import user_is_manager, user_is_reviewer
from rlhf_platform.services import set_password_tokens

pytestmark = pytest.mark.django_db


def create_user(*args: str, stdin: str = "") -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO(stdin))
        call_command("create_user", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_creates_a_manager_with_a_password_from_stdin():
    out, _ = create_user("boss", "--role", "manager", "--password-stdin", stdin="a long and fine passphrase\n")

    boss = get_user_model().objects.get(username="boss")
    assert "Created boss (manager)." in out
    assert user_is_manager(boss) and not user_is_reviewer(boss)
    assert boss.check_password("a long and fine passphrase")


def test_it_invites_with_a_link_to_set_the_password():
    out, _ = create_user("ria", "--role", "reviewer", "--role", "manager", "--invite", "--base-url", "https://x.test/")

    ria = get_user_model().objects.get(username="ria")
    url = out.strip().splitlines()[-1]
    assert url.startswith("https://x.test/accounts/set-password/")
    assert set_password_tokens.check_token(ria, url.rstrip("/").rsplit("/", 1)[1])
    assert user_is_manager(ria) and user_is_reviewer(ria) and not ria.has_usable_password()


def test_without_a_base_url_it_prints_the_path_and_says_so():
    out, err = create_user("ria", "--role", "reviewer", "--invite")

    assert out.strip().splitlines()[-1].startswith("/accounts/set-password/")
    assert "--base-url" in err


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("boss", "--role", "manager", "--password-stdin"), "12345\n", "This password is too short"),
        (("boss", "--role", "manager", "--password-stdin"), "", "No password on standard input"),
        (("bad name", "--role", "manager", "--invite"), "", "username: Enter a valid username"),
    ],
)
def test_bad_input_is_refused_clearly_and_creates_nobody(args, stdin, message):
    with pytest.raises(CommandError, match=message):
        create_user(*args, stdin=stdin)
    assert not get_user_model().objects.exists()


def test_an_existing_username_is_refused(manager):
    with pytest.raises(CommandError, match="is taken"):
        create_user(manager.username, "--role", "manager", "--invite")


@pytest.mark.parametrize(
    "args",
    [("boss", "--role", "admin", "--invite"), ("boss", "--invite"), ("boss", "--role", "manager")],
)
def test_a_wrong_command_line_is_refused(args):
    with pytest.raises(CommandError):
        create_user(*args)
