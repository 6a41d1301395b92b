from django.http import HttpRequest

from rlhf_platform.roles import user_is_manager, user_is_reviewer


def roles(request: HttpRequest) -> dict[str, bool]:
    """Lets the base layout show each role its own navigation."""
    return {
        "is_manager": user_is_manager(request.user),
        "is_reviewer": user_is_reviewer(request.user),
    }
