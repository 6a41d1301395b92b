"""``manage.py worker``: run queued training runs and generation jobs, one at a time, and beside
them queued imports and dataset builds, one at a time. SIGTERM or SIGINT stops it cleanly."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from rlhf_platform.instance import worker_require_shared_var_dir
from training.errors import WorkerNameInUse
from training.worker import QUEUES, Worker, default_worker_name, stop_on_signals


class Command(BaseCommand):
    help = (
        "Claim queued training runs and generation jobs and run them through the engine; "
        "with none queued, render imported responses to HTML. Imports and dataset builds run "
        "beside them, in a loop of their own. SIGTERM or SIGINT stops it cleanly: its run "
        "checkpoints and is marked interrupted (within TRAINING_STOP_GRACE_S)."
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
        parser.add_argument(
            "--name",
            default="",
            help="this worker's name, the same across restarts (default: WORKER_NAME, else the host name, "
            "with the queue when it runs one); a restarted worker recovers the runs it held at once",
        )

    def handle(self, *args, once: bool, poll: float | None, queue: str, name: str, **options) -> None:
        worker_require_shared_var_dir()
        queues = QUEUES if queue == "all" else (queue,)
        worker = Worker(name=name or default_worker_name(queues), log=lambda message: self.stdout.write(message))
        stop_on_signals(worker)
        try:
            if once:
                if not worker.run_one(queues=queues):
                    self.stdout.write("nothing queued")
                return
            self.stdout.write(f"worker {worker.name} waiting for work ({', '.join(queues)})")
            worker.run_forever(poll_s=poll if poll is not None else settings.TRAINING_POLL_S, queues=queues)
        except WorkerNameInUse as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"worker {worker.name} stopped" + (f" ({worker.stop_reason})" if worker.stop_reason else ""))
