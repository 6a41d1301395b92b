from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.datasets import EXPORT_FORMATS
from labeling.errors import LabelingError
from labeling.models import PreferenceDataset
from labeling.services.datasets import dataset_export


class Command(BaseCommand):
    help = "Export a preference dataset snapshot as JSONL, Parquet or a Hugging Face dataset directory."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", type=int, help="The dataset's id.")
        parser.add_argument("--format", choices=EXPORT_FORMATS, required=True)
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--split", choices=["train", "test"], help="Only this split (default: all).")

    def handle(self, *args, dataset: int, format: str, out: Path, split: str | None, **options) -> None:
        snapshot = PreferenceDataset.objects.filter(pk=dataset).first()
        if snapshot is None:
            raise CommandError(f"No dataset with id {dataset}.")
        try:
            path = dataset_export(dataset=snapshot, file_format=format, out=out, split=split)
        except LabelingError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"Wrote {path}")
