"""Moving an instance's files: the paths the training app keeps in the database follow them."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from labeling.models import DataJob
from training.models import GenerationJob, ModelArtifact, Round, TrainingRun

# Every column that holds a local path, per model; run checkpoints are in a JSON list.
PATH_FIELDS = {
    ModelArtifact: ("path",),
    TrainingRun: ("workdir", "resume_from", "text_dataset"),
    GenerationJob: ("workdir", "resume_from"),
    Round: ("pretrain_dataset", "evaluation_corpus"),
    DataJob: ("file_path",),  # a queued import's stored upload
}


def _moved(value: str, old_root: str, new_root: str) -> str:
    if value == old_root or value.startswith(old_root + "/"):
        return new_root + value[len(old_root) :]
    return value


def training_paths_relocate(*, old_root: Path, new_root: Path) -> int:
    """Rewrite the stored paths under ``old_root`` to lie under ``new_root``; returns rows changed.

    A restore on another machine (or into another ``VAR_DIR``) puts the models and run
    directories under a new root, while the database still names the old one. Paths outside
    ``old_root`` (models registered from elsewhere) are left as they are. Runs in one
    transaction, so a failure leaves every path as it was; the engine specs kept on runs are
    a record of what ran and are not rewritten (a resumed run writes a new spec).
    """
    old, new = str(old_root), str(new_root)
    if old == new:
        return 0
    changed = 0
    with transaction.atomic():
        for model, fields in PATH_FIELDS.items():
            extra = ("checkpoints",) if model is TrainingRun else ()
            for row in model.objects.only("pk", *fields, *extra).iterator():
                updated = [field for field in fields if _moved(getattr(row, field), old, new) != getattr(row, field)]
                for field in updated:
                    setattr(row, field, _moved(getattr(row, field), old, new))
                if extra and any(isinstance(point, dict) and "path" in point for point in row.checkpoints):
                    moved = [
                        {**point, "path": _moved(point["path"], old, new)}
                        if isinstance(point, dict) and isinstance(point.get("path"), str)
                        else point
                        for point in row.checkpoints
                    ]
                    if moved != row.checkpoints:
                        row.checkpoints = moved
                        updated.append("checkpoints")
                if updated:
                    row.save(update_fields=updated)
                    changed += 1
    return changed
