"""``manage.py worker``: run queued training runs and generation jobs, one at a time, and beside
them queued imports and dataset builds, one at a time."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from rlhf_platform.instance import worker_require_shared_var_dir
from training.worker import QUEUES, Worker


class Command(BaseCommand):
    help = (
        "Claim queued training runs and generation jobs and run them through the engine; "
        "with none queued, render imported responses to HTML. Imports and dataset builds run "
        "beside them, in a loop of their own."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="run at most one queued job, then exit")
        parser.add_argument("--poll", type=float, default=None, help="seconds to sleep when the queue is empty")
        parser.add_argument(
            "--queue",
            choices=[*QUEUES, "all"],
            default="all",
            help="training: runs and generation jobs; data: imports and dataset builds; all (default): both",
        )

    def handle(self, *args, once: bool, poll: float | None, queue: str, **options) -> None:
        worker_require_shared_var_dir()
        worker = Worker(log=lambda message: self.stdout.write(message))
        queues = QUEUES if queue == "all" else (queue,)
        if once:
            worker.recover()
            ran = ("training" in queues and worker.run_once()) or ("data" in queues and worker.run_data_once())
            if not ran:
                self.stdout.write("nothing queued")
            return
        self.stdout.write(f"worker {worker.name} waiting for work ({', '.join(queues)})")
        try:
            worker.run_forever(poll_s=poll if poll is not None else settings.TRAINING_POLL_S, queues=queues)
        except KeyboardInterrupt:
            self.stdout.write("stopped")
