"""``manage.py create_user``: a person with a role, for scripts and for the first manager of an instance."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rlhf_platform.errors import UserError
from rlhf_platform.roles import Role
from rlhf_platform.services import user_create, user_invite


class Command(BaseCommand):
    help = (
        "Create a person with a role. --password-stdin reads the password from standard input (checked by the "
        "password validators); --invite makes the account without a password and prints a one-time link to set it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--role",
            action="append",
            required=True,
            choices=[role.label() for role in Role],
            help="manager or reviewer; give it twice for both",
        )
        parser.add_argument("--email", default="", help="optional")
        how = parser.add_mutually_exclusive_group(required=True)
        how.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        how.add_argument("--invite", action="store_true", help="print a one-time link to set the password")
        parser.add_argument(
            "--base-url",
            default="",
            help="the site's address, e.g. https://rlhf.example.com, to print the link whole (else its path)",
        )

    def handle(self, *args, username: str, role: list[str], email: str, password_stdin: bool, invite: bool,
               base_url: str, **options) -> None:  # fmt: skip
        try:
            if password_stdin:
                # One line: what `echo "$PASSWORD" |` or a secrets file gives, without its newline.
                password = sys.stdin.readline().rstrip("\r\n")
                if not password:
                    raise UserError("No password on standard input.", {"password": "Empty."})
                user = user_create(username=username, roles=role, password=password, email=email, actor=None)
                self.stdout.write(f"Created {user.get_username()} ({', '.join(role)}).")
                return
            link = user_invite(username=username, roles=role, email=email, actor=None)
        except UserError as error:
            details = "; ".join(f"{field}: {message}" for field, message in error.errors.items())
            raise CommandError(f"{error.message} {details}".strip()) from None
        url = base_url.rstrip("/") + link.path
        self.stdout.write(
            f"Invited {link.user.get_username()} ({', '.join(role)}). Their one-time link to set a password, "
            f"valid until {link.expires_at:%Y-%m-%d %H:%M} UTC:"
        )
        self.stdout.write(url)
        if not base_url:
            self.stderr.write("Put the site's address in front of it (or pass --base-url).")
