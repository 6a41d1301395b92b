from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _write_instance_marker(sender, using: str = "default", apps=None, **kwargs) -> None:
    from rlhf_platform.instance import instance_marker_ensure

    try:
        # Absent when migrate took this app back to before its table (its state is in ``apps``).
        (apps or sender.apps).get_model("rlhf_platform", "Instance")
    except LookupError:
        return
    if using == "default":
        instance_marker_ensure()


class RlhfPlatformConfig(AppConfig):
    """The project package is also an app: roles, base templates, shared static files."""

    name = "rlhf_platform"
    verbose_name = "RLHF Platform"

    def ready(self) -> None:
        # Before any URL configuration or websocket route is imported: they all name ids `<id:...>`.
        from django.urls import register_converter

        from rlhf_platform.converters import DatabaseIdConverter

        register_converter(DatabaseIdConverter, "id")
        # After every migrate (and flush): the marker a worker checks VAR_DIR against (rlhf_platform/instance.py).
        post_migrate.connect(_write_instance_marker, sender=self, dispatch_uid="rlhf_platform.instance_marker")
