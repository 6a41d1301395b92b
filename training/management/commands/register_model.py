"""``manage.py register_model PATH --name NAME``: add a local model to the registry.

Unlike the API, the command is not confined to ``settings.MODEL_ROOTS``: it is run by an operator
at the server's shell, who can read any file already, and set-up scripts (``make demo``) register
models wherever they were put. Every check of the model's files still applies.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from training.errors import TrainingError
from training.models import ModelArtifact
from training.services.registry import model_register, model_register_once


class Command(BaseCommand):
    help = "Register a local safetensors/adapter directory, or a GGUF file (a .gguf path, or --gguf-file in a dir)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="local model directory, or a .gguf file")
        parser.add_argument("--name", required=True)
        parser.add_argument("--gguf-file", default="", help="GGUF file name inside PATH")
        parser.add_argument("--kind", choices=ModelArtifact.Kind.values, default=None, help="default: detected")
        parser.add_argument(
            "--skip-existing",
            action="store_true",
            help="do nothing when a model of this name is already registered at this path (for set-up scripts)",
        )

    def handle(self, *args, path: str, name: str, gguf_file: str, kind: str | None, **options) -> None:
        fields = {"path": path, "name": name, "gguf_file": gguf_file, "kind": kind, "confined": False}
        try:
            if options["skip_existing"]:
                artifact, created = model_register_once(**fields)
            else:
                artifact, created = model_register(**fields), True
        except TrainingError as error:
            raise CommandError(error.message) from None
        if not created:
            self.stdout.write(f"model {artifact.pk}: {artifact.name} is already registered at {artifact.path}")
            return
        self.stdout.write(
            f"registered model {artifact.pk}: {artifact.name} ({artifact.kind}, "
            f"{artifact.parameter_count or 0:,} parameters) at {artifact.path}"
        )
