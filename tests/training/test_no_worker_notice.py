"""Pages that show queued work say so when no worker is running to take it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from labeling.models import CampaignStatus
from labeling.services.data_jobs import import_job_create
from tests.labeling.factories import jsonl, make_campaign, pairwise_rows
from tests.training.conftest import first_run
from training.models import WorkerPresence

NOTICE = "No worker is running"


def worker_seen(seconds_ago: float) -> None:
    seen = timezone.now() - dt.timedelta(seconds=seconds_ago)
    WorkerPresence.objects.create(name="gpu-1", host="box", pid=4242, started_at=seen, seen_at=seen)


def test_a_queued_run_and_round_say_no_worker_is_running_until_one_beats(manager_client, training_round, settings):
    settings.TRAINING_STALE_AFTER_S = 120
    run = first_run(training_round)
    pages = [f"/training/runs/{run.pk}/", f"/training/runs/{run.pk}/live/", f"/training/rounds/{training_round.pk}/"]

    assert all(NOTICE in manager_client.get(page).content.decode() for page in pages)
    worker_seen(seconds_ago=300)  # a worker that went silent long ago is no worker
    assert all(NOTICE in manager_client.get(page).content.decode() for page in pages)
    WorkerPresence.objects.update(seen_at=timezone.now())
    assert not any(NOTICE in manager_client.get(page).content.decode() for page in pages)


def test_a_finished_run_says_nothing_of_workers(manager_client, training_round):
    run = first_run(training_round)
    run.status = "succeeded"
    run.save(update_fields=["status"])
    assert NOTICE not in manager_client.get(f"/training/runs/{run.pk}/").content.decode()


@pytest.mark.usefixtures("data_jobs_dir")
def test_a_queued_import_says_no_worker_is_running(manager, manager_client):
    campaign = make_campaign(manager=manager, status=CampaignStatus.DRAFT)
    upload = SimpleUploadedFile("tasks.jsonl", jsonl(pairwise_rows(2)))
    job = import_job_create(campaign=campaign, upload=upload, file_format="jsonl", created_by=manager)

    assert NOTICE in manager_client.get(f"/manage/jobs/{job.pk}/").content.decode()
    worker_seen(seconds_ago=1)
    assert NOTICE not in manager_client.get(f"/manage/jobs/{job.pk}/").content.decode()
