"""A run's checkpoint list names the checkpoints on disk: the engine keeps only the newest few."""

from __future__ import annotations

import pytest

from tests.training.conftest import checkpoints_on_disk
from tests.training.test_cancel_and_resume import launch_sft
from training.models import JobStatus

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_lists_only_the_checkpoints_the_engine_kept(tiny_model, sft_snapshot, manager, worker):
    # Four checkpoints written, two kept (save_total_limit, the engine's default).
    run = launch_sft(tiny_model, sft_snapshot, manager, max_steps=4, save_steps=1)
    assert worker.run_once()
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert [point["path"] for point in run.checkpoints] == checkpoints_on_disk(run)
    assert [point["step"] for point in run.checkpoints] == [3, 4]
