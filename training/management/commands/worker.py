"""``manage.py worker``: run queued training runs and generation jobs, one at a time."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from training.worker import Worker


class Command(BaseCommand):
    help = (
        "Claim queued training runs and generation jobs and run them through the engine; "
        "with none queued, render imported responses to HTML."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="run at most one queued job, then exit")
        parser.add_argument("--poll", type=float, default=None, help="seconds to sleep when the queue is empty")

    def handle(self, *args, once: bool, poll: float | None, **options) -> None:
        worker = Worker(log=lambda message: self.stdout.write(message))
        if once:
            worker.recover()
            if not worker.run_once():
                self.stdout.write("nothing queued")
            return
        self.stdout.write(f"worker {worker.name} waiting for work")
        try:
            worker.run_forever(poll_s=poll if poll is not None else settings.TRAINING_POLL_S)
        except KeyboardInterrupt:
            self.stdout.write("stopped")
