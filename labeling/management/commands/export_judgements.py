from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.datasets import write_rows
from labeling.models import Campaign
from labeling.selectors import raw_judgement_rows


class Command(BaseCommand):
    help = "Export a campaign's raw judgements as JSONL: one row per judgement, reviewers pseudonymous."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True, help="The campaign's slug.")
        parser.add_argument("--out", type=Path, required=True)

    def handle(self, *args, campaign: str, out: Path, **options) -> None:
        target = Campaign.objects.filter(slug=campaign).first()
        if target is None:
            raise CommandError(f"No campaign with slug {campaign!r}.")
        if out.exists():
            raise CommandError(f"{out} already exists; choose a new path.")
        write_rows(raw_judgement_rows(campaign=target), out)
        self.stdout.write(f"Wrote {out}")
