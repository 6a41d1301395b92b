from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.models import Campaign
from labeling.services.imports import FORMATS, ImportRejected, tasks_import_file


class Command(BaseCommand):
    help = "Import tasks from a JSONL, CSV or Parquet file into a campaign. All rows or none."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--campaign", required=True, help="The campaign's slug.")
        parser.add_argument("--format", choices=FORMATS, help="Defaults to the file's extension.")

    def handle(self, *args, file: Path, campaign: str, format: str | None, **options) -> None:
        target = Campaign.objects.filter(slug=campaign).first()
        if target is None:
            raise CommandError(f"No campaign with slug {campaign!r}.")
        try:
            result = tasks_import_file(campaign=target, path=file, file_format=format)
        except ImportRejected as error:
            details = "".join(f"\n  line {line}: {reason}" for line, reason in error.row_errors[1:])
            raise CommandError(error.message + details) from None
        self.stdout.write(
            f"Imported {result.created} tasks into {target.slug} "
            f"({result.prompt_only} prompt-only, {result.skipped_duplicates} duplicates skipped)."
        )
