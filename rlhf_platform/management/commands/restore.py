"""``manage.py restore ARCHIVE``: put a backup in place in a fresh instance, checking every hash."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from rlhf_platform.backup import BackupError, backup_restore


class Command(BaseCommand):
    help = (
        "Restore an archive written by `manage.py backup` into this instance's database and VAR_DIR. "
        "Stop the server and workers first. Refuses a non-empty database or VAR_DIR unless --force."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("archive")
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace a non-empty database and overwrite the VAR_DIR files the archive holds",
        )

    def handle(self, *args, archive: str, force: bool, **options) -> None:
        try:
            report = backup_restore(archive=Path(archive), force=force, progress=self.stdout.write)
        except BackupError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"Restored {report.files:,} files ({report.bytes:,} bytes) and the database.")
        if report.migrations_applied:
            self.stdout.write(f"Applied {report.migrations_applied} migrations to the restored database.")
        if report.paths_relocated:
            self.stdout.write(f"Moved the stored paths of {report.paths_relocated} models, runs and rounds to VAR_DIR.")
        for model in report.external_models:
            where = "present" if model["present"] else "MISSING on this machine"
            self.stderr.write(f"Model {model['id']} {model['name']} was not in the archive: {model['path']} ({where}).")
        snapshots = report.snapshots
        self.stdout.write(f"Dataset snapshots: {len(snapshots['ok'])} match their content hash.")
        damaged = [f"{name}: file missing" for name in snapshots["missing"]]
        damaged += [f"{name}: content hash mismatch" for name in snapshots["mismatch"]]
        if damaged:
            raise CommandError("The restore finished, but these snapshots are damaged:\n  " + "\n  ".join(damaged))
