"""``manage.py backup DEST``: the database and VAR_DIR in one archive, with a manifest of hashes."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from rlhf_platform.backup import BackupError, backup_create


class Command(BaseCommand):
    help = (
        "Write one archive (DEST; .tar, or .tar.gz to compress) holding a consistent copy of the database "
        "and the files under VAR_DIR, with a manifest of every file's SHA-256. Safe while the server runs."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("destination", help="the archive to write; must not exist yet")

    def handle(self, *args, destination: str, **options) -> None:
        try:
            manifest = backup_create(destination=Path(destination), progress=self.stdout.write)
        except BackupError as error:
            raise CommandError(error.message) from None
        total = sum(entry["size"] for entry in manifest["files"])
        self.stdout.write(f"Wrote {destination}: {len(manifest['files']):,} files, {total:,} bytes.")
        for model in manifest["external_models"]:
            self.stderr.write(
                f"Not included: model {model['id']} {model['name']} lies outside VAR_DIR, at {model['path']}; "
                "back it up separately."
            )
