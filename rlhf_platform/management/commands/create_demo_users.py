import os

from django.core.management.base import BaseCommand

from rlhf_platform.roles import Role
from rlhf_platform.services import demo_users_ensure

PASSWORD_VARIABLES = {Role.MANAGER: "DEMO_MANAGER_PASSWORD", Role.REVIEWER: "DEMO_REVIEWER_PASSWORD"}


class Command(BaseCommand):
    help = (
        "Create the demo users (one manager, two reviewers). Passwords come from "
        "DEMO_MANAGER_PASSWORD and DEMO_REVIEWER_PASSWORD, or are generated and printed once."
    )

    def handle(self, *args, **options) -> None:
        outcomes = demo_users_ensure(
            passwords={role: os.environ.get(variable) or None for role, variable in PASSWORD_VARIABLES.items()}
        )
        for outcome in outcomes:
            label = f"  {outcome.role.label():<9} {outcome.username:<10}"
            if outcome.generated_password:
                self.stdout.write(f"{label} password: {outcome.generated_password}  (shown once)")
            elif outcome.password_changed:
                self.stdout.write(f"{label} password from {PASSWORD_VARIABLES[outcome.role]}")
            else:
                self.stdout.write(f"{label} exists, password unchanged")
