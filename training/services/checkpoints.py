"""A run's checkpoint list, read from its disk: the engine keeps only the newest few checkpoints.

Shared by the transitions that record checkpoints: an event, a cancel, an interrupt, a resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.engine.checkpoints import complete_checkpoints
from training.models import TrainingRun


def run_checkpoints_kept(*, run: TrainingRun, written: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The run's checkpoints as its disk holds them, ``[{step, path}]`` oldest first.

    The engine keeps only the newest few, and the one it writes as it stops (a cancel, a worker
    stopping or dying) may never reach the worker as an event: the list is read from the disk.
    Where the run's directory cannot be seen from here (an executor on another machine), the
    engine's events are all there is: ``written`` is appended to the list so far.
    """
    directory = checkpoints_directory(run)
    if directory is None or not directory.is_dir():
        return [*run.checkpoints, written] if written is not None else list(run.checkpoints)
    return [{"step": step, "path": str(path)} for step, path in complete_checkpoints(directory)]


def record_checkpoints_at_stop(run: TrainingRun) -> None:
    """List the checkpoints the engine left as it stopped; progress events come at most once a second,
    so the last checkpoint's step may be newer than the run's step."""
    run.checkpoints = run_checkpoints_kept(run=run)
    steps = [point["step"] for point in run.checkpoints if isinstance(point.get("step"), int)]
    run.step = max([run.step, *steps])


def checkpoints_directory(run: TrainingRun) -> Path | None:
    output_dir = (run.spec or {}).get("output_dir") or (str(Path(run.workdir) / "output") if run.workdir else "")
    return Path(output_dir) / "checkpoints" if output_dir else None
