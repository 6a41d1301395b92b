"""Typed readers for settings that come from the environment.

Each helper names the variable in its error, so a bad deployment value fails at
start-up with a message that says what to fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "", *, environ: Mapping[str, str] = os.environ) -> str:
    return environ.get(name, default)


def env_bool(name: str, default: bool = False, *, environ: Mapping[str, str] = os.environ) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {raw!r}.")


def env_int(name: str, default: int = 0, *, minimum: int | None = None, environ: Mapping[str, str] = os.environ) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}.")
    return value


def env_float(
    name: str, default: float = 0.0, *, minimum: float | None = None, environ: Mapping[str, str] = os.environ
) -> float:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}.") from None
    if not value == value or value in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name} must be a finite number, got {raw!r}.")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}.")
    return value


def env_list(name: str, default: list[str] | None = None, *, environ: Mapping[str, str] = os.environ) -> list[str]:
    """A comma-separated list; blank items are dropped."""
    raw = environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_paths(name: str, *, environ: Mapping[str, str] = os.environ) -> list[Path]:
    """Absolute directories, separated by colons or commas (like ``PATH``), with symlinks and ``..`` resolved.

    A relative path or one starting with ``~`` is refused: the server's working directory and its
    user's home are accidents of how it was started, not places an operator means.
    """
    raw = environ.get(name)
    if raw is None:
        return []
    paths = []
    for item in re.split(r"[:,]", raw):
        item = item.strip()
        if not item:
            continue
        if not item.startswith("/"):
            raise ImproperlyConfigured(f"{name} must list absolute directories, got {item!r}.")
        paths.append(Path(item).resolve())
    return paths
