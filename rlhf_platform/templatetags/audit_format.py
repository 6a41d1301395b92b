"""How the audit log page shows the values it recorded (``{{ value|audit_value }}``)."""

from __future__ import annotations

import json

from django import template

register = template.Library()


@register.filter(name="audit_value")
def audit_value(value: object) -> str:
    """Text as it is, nothing as a dash, yes/no, and lists and objects as JSON (not Python's repr:
    ``['a', 'b']`` with quotes Python chose, ``True``, ``None`` read as code to most managers)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
