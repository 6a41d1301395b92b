from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q

from rlhf_platform.roles import Role


def team_counts() -> dict[str, int]:
    """Active users per role, for the manager dashboard."""
    active = get_user_model().objects.filter(is_active=True)
    return {
        "reviewers": active.filter(groups__name=Role.REVIEWER).count(),
        "managers": active.filter(Q(groups__name=Role.MANAGER) | Q(is_superuser=True)).distinct().count(),
    }
