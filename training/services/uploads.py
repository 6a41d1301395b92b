"""Corpora uploaded on the round launch page, kept on the server for the worker to read.

Each upload gets a directory of its own under ``settings.TRAINING_UPLOADS_DIR`` (a random name,
so two managers uploading ``corpus.txt`` never meet), and the file a safe name with its format's
suffix. The launch that stored it removes the directory again when it refuses the round
(``round_launch``), so nothing is left behind.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.uploadedfile import UploadedFile
from django.utils.text import get_valid_filename

from training.errors import TrainingError

# What the engine reads as a text corpus: plain text, JSON lines, Parquet.
CORPUS_SUFFIXES = (".txt", ".jsonl", ".parquet")


def corpus_upload_store(*, upload: UploadedFile, field: str) -> Path:
    """Keep ``upload`` as ``TRAINING_UPLOADS_DIR/<random>/<safe name>``; returns the file's path.

    Refuses (``TrainingError`` on ``field``) a file of another format, an empty one, or one over
    ``settings.LABELING_IMPORT_MAX_BYTES``. Its content is checked by the launch, like a named path.
    """
    name = Path(upload.name or "").name
    suffix = Path(name).suffix.lower()
    if suffix not in CORPUS_SUFFIXES:
        raise TrainingError(
            f"{name or 'The file'}: a corpus is a .txt, .jsonl or .parquet file.",
            {field: "A .txt, .jsonl or .parquet file."},
        )
    limit = settings.LABELING_IMPORT_MAX_BYTES
    if upload.size > limit:
        raise TrainingError(
            f"{name} is {upload.size / 2**20:.1f} MB; a corpus upload takes at most {limit / 2**20:.0f} MB.",
            {field: f"Too large: a corpus upload takes at most {limit / 2**20:.0f} MB."},
        )
    if upload.size == 0:
        raise TrainingError(f"{name} is empty.", {field: "The file is empty."})
    try:
        stem = get_valid_filename(Path(name).stem)[:100]
    except SuspiciousFileOperation:  # nothing usable is left of the name, e.g. "..."
        stem = "corpus"
    directory = Path(settings.TRAINING_UPLOADS_DIR) / uuid.uuid4().hex
    directory.mkdir(parents=True)
    target = directory / f"{stem}{suffix}"
    try:
        with target.open("xb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
    except BaseException:
        corpus_upload_remove(path=target)
        raise
    return target


def corpus_upload_remove(*, path: Path) -> None:
    """Remove a stored upload's directory (a refused launch leaves nothing behind)."""
    directory = Path(path).parent
    uploads = Path(settings.TRAINING_UPLOADS_DIR).resolve()
    # Only ever a directory this module made: one level under the uploads directory.
    if directory.resolve().parent == uploads:
        shutil.rmtree(directory)
