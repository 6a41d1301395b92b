from django.apps import AppConfig


class RlhfPlatformConfig(AppConfig):
    """The project package is also an app: roles, base templates, shared static files."""

    name = "rlhf_platform"
    verbose_name = "RLHF Platform"
