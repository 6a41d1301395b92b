from django.apps import AppConfig


class RlhfPlatformConfig(AppConfig):
    """The project package is also an app: roles, base templates, shared static files."""

    name = "rlhf_platform"
    verbose_name = "RLHF Platform"

    def ready(self) -> None:
        # Before any URL configuration or websocket route is imported: they all name ids `<id:...>`.
        from django.urls import register_converter

        from rlhf_platform.converters import DatabaseIdConverter

        register_converter(DatabaseIdConverter, "id")
