"""The checkpoints a run has on disk, as the engine resumes from them and the platform lists them.

The Trainer writes ``<output_dir>/checkpoints/checkpoint-<step>/`` and keeps only the newest
``save_total_limit`` of them. It writes ``trainer_state.json`` last, so a checkpoint cut short
(the machine went down while saving) has none: it is neither listed nor resumed from. No heavy
imports here: the web process reads this module too.
"""

from __future__ import annotations

from pathlib import Path

PREFIX = "checkpoint-"


def complete_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of each complete checkpoint in ``directory``, oldest first (none if it is missing)."""
    found = []
    for path in directory.glob(f"{PREFIX}*"):
        step = path.name.removeprefix(PREFIX)
        if step.isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(step), path))
    return sorted(found)
