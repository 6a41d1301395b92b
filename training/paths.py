"""Server paths typed into the pages and the API, confined to the directories set aside for them.

A manager names a model directory or a corpus by its path on the server. Without a bound, that
path reaches anything the server process can read (``/etc/passwd`` parsed as a GGUF file, a round
queued on any text file, the first keys of any JSONL file echoed back). Paths are therefore
resolved first (symlinks and ``..``), so a link inside a root cannot lead out of it, and must then
lie inside one of the roots: ``settings.MODEL_ROOTS`` for models, ``settings.DATA_ROOTS`` for data.
Nothing outside the roots is opened, so no error can tell what such a file holds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings

from training.errors import TrainingError

# A model or corpus directory is walked for links leading out of the roots; one with more entries
# than this is not a model or a corpus a manager means (and the walk would hold the request).
MAX_ENTRIES_CHECKED = 10_000


def model_roots() -> list[Path]:
    return [Path(root) for root in settings.MODEL_ROOTS]


def adapter_base_roots() -> list[Path]:
    """Where an adapter's base model may be: a registered model's roots, or a run's output."""
    return [*model_roots(), Path(settings.TRAINING_DIR)]


def data_roots() -> list[Path]:
    """The data roots, and the directory of corpora uploaded at launch (a later round may name one again)."""
    return [*(Path(root) for root in settings.DATA_ROOTS), Path(settings.TRAINING_UPLOADS_DIR)]


def confined_path(raw: str, *, roots: Sequence[Path], field: str) -> Path:
    """``raw`` as an absolute path with symlinks and ``..`` resolved, inside one of ``roots``.

    ``~`` is refused rather than expanded: it would be the server user's home (root's, in a
    container), which is never what a manager in a browser means. A relative path is refused too:
    it would depend on the directory the server was started from.
    """
    text = (raw or "").strip()
    if not text:
        raise TrainingError("Give the path.", {field: "This field is required."})
    if "://" in text:
        raise TrainingError(f"{field}: only local paths are accepted.", {field: "Not a local path."})
    if "\x00" in text:
        raise TrainingError(f"{field}: the path holds a NUL character.", {field: "Not a usable path."})
    if text.startswith("~"):
        raise TrainingError(
            f"{field}: ~ is not expanded; give the absolute path. {_inside(roots)}", {field: "Give an absolute path."}
        )
    if not Path(text).is_absolute():
        raise TrainingError(f"{field}: give an absolute path. {_inside(roots)}", {field: "Give an absolute path."})
    try:
        resolved = Path(text).resolve()
    except (OSError, RuntimeError) as error:  # a name too long, a symlink loop
        raise TrainingError(f"{field}: {text} is not a usable path ({error}).", {field: "Not a usable path."}) from None
    resolved_roots = [Path(root).resolve() for root in roots]
    if not _within(resolved, resolved_roots):
        raise TrainingError(f"{field}: {_inside(roots)}", {field: _inside(roots)})
    if resolved.is_dir():
        _check_links_inside(resolved, resolved_roots, roots, field)
    return resolved


def _within(path: Path, resolved_roots: Sequence[Path]) -> bool:
    return any(path.is_relative_to(root) for root in resolved_roots)


def _check_links_inside(directory: Path, resolved_roots: Sequence[Path], roots: Sequence[Path], field: str) -> None:
    """No symlink under a model or data directory leads out of the roots: the files a directory
    holds (a corpus's .txt files, a model's weights) are read as well as the directory itself."""
    seen = 0
    for parent, names, files in os.walk(directory):
        for name in [*names, *files]:
            seen += 1
            if seen > MAX_ENTRIES_CHECKED:
                raise TrainingError(
                    f"{field}: {directory} holds more than {MAX_ENTRIES_CHECKED:,} files; name a smaller directory.",
                    {field: "Too many files."},
                )
            entry = Path(parent) / name
            if entry.is_symlink() and not _within(entry.resolve(), resolved_roots):
                raise TrainingError(
                    f"{field}: {entry} links outside the allowed directories. {_inside(roots)}",
                    {field: _inside(roots)},
                )


def _inside(roots: Sequence[Path]) -> str:
    return "The path must be inside one of: " + ", ".join(str(root) for root in roots) + "."
