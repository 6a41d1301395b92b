"""Imports and dataset builds as worker jobs: queueing in the request, progress, outcomes, stale jobs, permissions."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from auditlog.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from labeling import selectors
from labeling.errors import LabelingError
from labeling.models import CampaignStatus, DataJob, Task
from labeling.services import data_jobs as data_job_services
from labeling.services import imports as import_services
from labeling.services.data_jobs import (
    data_job_run_next,
    data_jobs_fail_stale,
    dataset_build_job_create,
    import_job_create,
)
from labeling.services.datasets import dataset_params
from labeling.services.judgements import judgement_submit
from rlhf_platform.roles import Role
from tests.labeling.factories import claim_next, jsonl, make_campaign, pairwise_rows, run_data_jobs


def upload(rows, name: str = "tasks.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, jsonl(rows), content_type="application/octet-stream")


def api_for(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


@pytest.fixture
def campaign(manager):
    return make_campaign(manager=manager, status=CampaignStatus.DRAFT)


def test_it_stores_the_upload_and_answers_before_reading_a_row(campaign, manager, data_jobs_dir):
    api = api_for(manager)

    response = api.post(f"/api/campaigns/{campaign.pk}/import/", {"file": upload(pairwise_rows(3))}, format="multipart")

    assert response.status_code == 202
    body = response.json()
    assert response["Location"] == body["url"] == f"/api/data-jobs/{body['id']}/"
    assert body["kind"] == "import" and body["status"] == "queued" and body["file_name"] == "tasks.jsonl"
    assert body["progress"] == {"done": 0, "total": len(jsonl(pairwise_rows(3))), "rows": 0, "phase": "", "percent": 0}
    job = DataJob.objects.get()
    stored = [path.name for path in data_jobs_dir.iterdir()]
    assert stored == [f"upload-{job.file_path.rsplit('upload-', 1)[1]}"]
    assert (data_jobs_dir / stored[0]).read_bytes() == jsonl(pairwise_rows(3))
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("closed", "The campaign is closed; it takes no more tasks."),
        ("too_big", "imports are limited to 1 MiB"),
        ("empty", "file is empty."),
        ("unknown_format", "Cannot tell the format of 'tasks.txt'"),
    ],
)
def test_it_refuses_in_the_request_what_needs_no_reading(setup, message, campaign, manager, settings, data_jobs_dir):
    rows, name = pairwise_rows(2), "tasks.jsonl"
    if setup == "closed":
        campaign.status = CampaignStatus.CLOSED
        campaign.save(update_fields=["status"])
    elif setup == "too_big":
        settings.LABELING_IMPORT_MAX_BYTES = 2**20
        rows = [{"prompt": "x" * 2**20, "responses": ["a", "b"]}]
    elif setup == "empty":
        rows = []
    else:
        name = "tasks.txt"

    response = api_for(manager).post(
        f"/api/campaigns/{campaign.pk}/import/", {"file": upload(rows, name)}, format="multipart"
    )

    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
    assert not DataJob.objects.exists()
    assert not data_jobs_dir.exists() or not any(data_jobs_dir.iterdir())


def test_it_imports_in_the_worker_records_the_audit_and_removes_the_upload(campaign, manager, data_jobs_dir):
    job = import_job_create(campaign=campaign, upload=upload(pairwise_rows(5)), file_format="jsonl", created_by=manager)

    assert data_job_run_next(worker="test") == job
    assert data_job_run_next(worker="test") is None

    job.refresh_from_db()
    assert job.status == DataJob.Status.SUCCEEDED and job.worker == "test"
    assert job.result == {"created": 5, "skipped_duplicates": 0, "prompt_only": 0, "rows": 5}
    assert (job.progress_done, job.progress_total, job.rows_done) == (job.file_size, job.file_size, 5)
    assert job.started_at <= job.finished_at
    assert Task.objects.filter(campaign=campaign).count() == 5
    entry = LogEntry.objects.get(additional_data__action="tasks.import")
    assert entry.actor == manager and entry.object_pk == str(campaign.pk)
    details = entry.additional_data
    assert details["file_name"] == "tasks.jsonl"
    assert details["counts"] == {"created": 5, "skipped_duplicates": 0, "prompt_only": 0, "rows": 5}
    assert list(data_jobs_dir.iterdir()) == []  # the upload and the progress file are gone


def test_a_job_page_lists_the_other_recent_jobs_not_a_frozen_copy_of_itself(
    campaign, manager, manager_client, data_jobs_dir
):
    earlier = import_job_create(
        campaign=campaign, upload=upload(pairwise_rows(2)), file_format="jsonl", created_by=manager
    )
    job = import_job_create(
        campaign=campaign, upload=upload(pairwise_rows(3), name="later.jsonl"), file_format="jsonl", created_by=manager
    )
    run_data_jobs()

    html = manager_client.get(f"/manage/jobs/{job.pk}/").content.decode()

    assert "Other recent imports" in html and f'href="/manage/jobs/{earlier.pk}/"' in html
    assert f'href="/manage/jobs/{job.pk}/"' not in html


def test_it_fails_a_bad_file_with_its_lines_and_writes_nothing(campaign, manager, data_jobs_dir):
    rows = [*pairwise_rows(3), {"prompt": "", "responses": ["a", "b"]}, {"prompt": "q", "responses": ["a"]}]
    job = import_job_create(campaign=campaign, upload=upload(rows), file_format="jsonl", created_by=manager)

    run_data_jobs()

    job.refresh_from_db()
    assert job.status == DataJob.Status.FAILED
    assert job.error.startswith("Line 4: prompt must be non-empty text. Nothing was imported")
    assert list(job.errors) == ["line 4", "line 5"]
    assert job.result == {}
    assert not Task.objects.exists()
    assert not LogEntry.objects.filter(additional_data__action="tasks.import").exists()
    assert list(data_jobs_dir.iterdir()) == []
    answered = api_for(manager).get(f"/api/data-jobs/{job.pk}/").json()
    assert answered["status"] == "failed" and answered["detail"] == job.error and answered["errors"] == job.errors


def test_it_shows_progress_while_the_import_runs(campaign, manager, monkeypatch):
    monkeypatch.setattr(import_services, "BATCH_SIZE", 2)
    job = import_job_create(campaign=campaign, upload=upload(pairwise_rows(7)), file_format="jsonl", created_by=manager)
    seen = []
    write = data_job_services.ProgressFile.write

    def write_and_look(self, **progress):
        write(self, **progress)
        running = DataJob.objects.get(pk=job.pk)
        seen.append(selectors.data_job_progress(job=running))

    monkeypatch.setattr(data_job_services.ProgressFile, "write", write_and_look)

    run_data_jobs()

    assert [progress["rows"] for progress in seen] == [0, 2, 4, 6, 7]  # 0: the first heartbeat
    dones = [progress["done"] for progress in seen]
    assert dones == sorted(dones) and dones[-1] == job.file_size
    assert 0 < seen[1]["percent"] < seen[2]["percent"] < 100
    assert {progress["total"] for progress in seen} == {job.file_size}
    job.refresh_from_db()
    assert selectors.data_job_progress(job=job)["percent"] == 100


def judge_first_response(campaign, reviewer, submission: str) -> None:
    """Prefer the task's first response, whichever side it is shown on: reviewers agree, so no pair is a tie."""
    assignment = claim_next(reviewer=reviewer, campaign=campaign)
    first = min(assignment.shown_order)
    judgement_submit(
        reviewer=reviewer,
        assignment_id=assignment.pk,
        answers={"preference": {"winner": first, "strength": 1}},
        client_submission_id=submission,
        time_spent_ms=4000,
    )


def test_it_builds_a_dataset_in_phases(manager, make_user, monkeypatch):
    reviewers = [make_user(name, role=Role.REVIEWER) for name in ("ann", "ben")]
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=pairwise_rows(3))
    for reviewer in reviewers:
        for index in range(3):
            judge_first_response(campaign, reviewer, f"{reviewer.username}-submission-{index}")
    job = dataset_build_job_create(
        campaigns=[campaign], params=dataset_params(method="majority"), created_by=manager, name="Built later"
    )
    phases = []
    write = data_job_services.ProgressFile.write

    def write_and_look(self, **progress):
        write(self, **progress)
        phases.append(selectors.data_job_progress(job=DataJob.objects.get(pk=job.pk)))

    monkeypatch.setattr(data_job_services.ProgressFile, "write", write_and_look)

    run_data_jobs()

    assert [(p["phase"], p["done"], p["total"]) for p in phases] == [
        ("", 0, 3),  # the first heartbeat, before the build starts
        ("read", 0, 3),
        ("aggregate", 1, 3),
        ("write", 2, 3),
    ]
    assert phases[-1]["phase_label"] == "Writing the snapshot"
    job.refresh_from_db()
    assert job.status == DataJob.Status.SUCCEEDED, job.error
    assert job.dataset.name == "Built later" and job.result["created"] is True
    assert job.dataset.created_by == manager
    assert LogEntry.objects.get(additional_data__action="dataset.build").actor == manager


def test_it_refuses_a_build_without_campaigns_in_the_request(manager):
    with pytest.raises(LabelingError, match="Choose at least one campaign"):
        dataset_build_job_create(campaigns=[], params=dataset_params(), created_by=manager)
    assert not DataJob.objects.exists()


def test_it_fails_an_import_whose_campaign_was_deleted_meanwhile(campaign, manager, data_jobs_dir):
    job = import_job_create(campaign=campaign, upload=upload(pairwise_rows(2)), file_format="jsonl", created_by=manager)
    campaign.delete()

    run_data_jobs()

    job.refresh_from_db()
    assert job.status == DataJob.Status.FAILED and "campaign was deleted" in job.error
    assert list(data_jobs_dir.iterdir()) == []


def test_it_fails_a_job_on_an_unexpected_error_and_goes_on(campaign, manager, monkeypatch, caplog):
    first = import_job_create(
        campaign=campaign, upload=upload(pairwise_rows(2)), file_format="jsonl", created_by=manager
    )
    second = import_job_create(
        campaign=campaign, upload=upload(pairwise_rows(3)[2:]), file_format="jsonl", created_by=manager
    )
    real_import = data_job_services.tasks_import
    calls = []

    def broken_once(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real_import(**kwargs)

    monkeypatch.setattr(data_job_services, "tasks_import", broken_once)

    assert run_data_jobs() == [first, second]

    first.refresh_from_db(), second.refresh_from_db()
    assert (first.status, first.error) == (DataJob.Status.FAILED, "Worker error: RuntimeError.")
    assert "a bug" in caplog.text  # logged with its traceback, not shown to the manager
    assert second.status == DataJob.Status.SUCCEEDED


def claimed_long_ago(job: DataJob, seconds: float) -> DataJob:
    DataJob.objects.filter(pk=job.pk).update(
        status=DataJob.Status.RUNNING, worker="dead-host:1", heartbeat_at=timezone.now() - dt.timedelta(seconds=seconds)
    )
    job.refresh_from_db()
    return job


def test_it_fails_a_stale_job_whose_worker_died(campaign, manager, data_jobs_dir):
    stale = claimed_long_ago(
        import_job_create(campaign=campaign, upload=upload(pairwise_rows(2)), file_format="jsonl", created_by=manager),
        seconds=600,
    )
    beating = claimed_long_ago(
        import_job_create(campaign=campaign, upload=upload(pairwise_rows(2)), file_format="jsonl", created_by=manager),
        seconds=600,
    )
    data_job_services.ProgressFile(beating.progress_path).write(done=10, rows=2)  # a heartbeat just now
    old = time.time() - 600
    data_job_services.ProgressFile(stale.progress_path).write(done=10, rows=2)
    os.utime(stale.progress_path, (old, old))

    assert data_jobs_fail_stale(stale_after_s=120) == 1

    stale.refresh_from_db(), beating.refresh_from_db()
    assert stale.status == DataJob.Status.FAILED
    assert "nothing was imported. Import the file again." in stale.error
    assert not os.path.exists(stale.file_path) and not stale.progress_path.exists()
    assert beating.status == DataJob.Status.RUNNING and os.path.exists(beating.file_path)
    assert data_jobs_fail_stale(stale_after_s=120) == 0


def test_the_worker_fails_stale_data_jobs_when_it_starts(campaign, manager):
    from training.worker import Worker

    build = dataset_build_job_create(campaigns=[campaign], params=dataset_params(), created_by=manager)
    claimed_long_ago(build, seconds=3600)

    assert Worker(executor=object(), stale_after_s=60, log=lambda message: None).recover() == 1

    build.refresh_from_db()
    assert build.status == DataJob.Status.FAILED and "nothing was saved. Build it again." in build.error


def test_a_restarted_worker_fails_the_jobs_it_was_running_at_once(campaign, manager, data_jobs_dir):
    from training.worker import Worker

    def claimed_just_now(job: DataJob, worker: str) -> DataJob:
        DataJob.objects.filter(pk=job.pk).update(
            status=DataJob.Status.RUNNING, worker=worker, heartbeat_at=timezone.now()
        )
        job.refresh_from_db()
        return job

    own = claimed_just_now(
        import_job_create(campaign=campaign, upload=upload(pairwise_rows(2)), file_format="jsonl", created_by=manager),
        worker="gpu-1",
    )
    other = claimed_just_now(
        dataset_build_job_create(campaigns=[campaign], params=dataset_params(), created_by=manager), worker="gpu-2"
    )

    # Its previous process died mid-import (kill -9, or past the stop's grace): nothing of it was kept.
    assert Worker(executor=object(), name="gpu-1", log=lambda message: None).recover() == 1

    own.refresh_from_db(), other.refresh_from_db()
    assert own.status == DataJob.Status.FAILED and "nothing was imported. Import the file again." in own.error
    assert not os.path.exists(own.file_path)
    assert other.status == DataJob.Status.RUNNING  # another live worker's


def test_data_jobs_are_for_managers_only(campaign, manager, reviewer):
    campaign.reviewers.add(reviewer)
    job = import_job_create(campaign=campaign, upload=upload(pairwise_rows(2)), file_format="jsonl", created_by=manager)
    reviewer_api = api_for(reviewer)
    assert reviewer_api.get(f"/api/data-jobs/{job.pk}/").status_code == 403
    assert reviewer_api.get("/api/data-jobs/").status_code == 403
    assert reviewer_api.post("/api/datasets/", {"campaigns": [campaign.pk]}, format="json").status_code == 403
    refused = reviewer_api.post(
        f"/api/campaigns/{campaign.pk}/import/", {"file": upload(pairwise_rows(1))}, format="multipart"
    )
    assert refused.status_code == 403
    assert APIClient().get(f"/api/data-jobs/{job.pk}/").status_code == 401
    reviewer_pages = Client()
    reviewer_pages.force_login(reviewer)
    assert reviewer_pages.get(f"/manage/jobs/{job.pk}/").status_code == 403
    assert reviewer_pages.get(f"/manage/jobs/{job.pk}/live/").status_code == 403
    assert Client().get(f"/manage/jobs/{job.pk}/").status_code == 302  # to the sign-in page
    assert DataJob.objects.count() == 1

    manager_api = api_for(manager)
    assert manager_api.get("/api/data-jobs/999999/").json() == {"detail": "No such job."}
    assert [item["id"] for item in manager_api.get("/api/data-jobs/").json()["results"]] == [job.pk]
    manager_pages = Client()
    manager_pages.force_login(manager)
    assert manager_pages.get("/manage/jobs/999999/").status_code == 404


def test_it_checks_the_csrf_token_of_an_upload(campaign, manager):
    pages = Client(enforce_csrf_checks=True)
    pages.force_login(manager)

    response = pages.post(f"/manage/campaigns/{campaign.slug}/import/", {"file": upload(pairwise_rows(1))})

    assert response.status_code == 403
    assert not DataJob.objects.exists()


def test_it_escapes_file_names_and_reasons_on_the_job_page(campaign, manager, manager_client):
    rows = [{"prompt": "q", "responses": ["a", "b"], "<script>x</script>": 1}]
    job = import_job_create(
        campaign=campaign,
        upload=upload(rows, name="<img src=x onerror=alert(1)>.jsonl"),
        file_format="jsonl",
        created_by=manager,
    )
    run_data_jobs()

    html = manager_client.get(f"/manage/jobs/{job.pk}/").content.decode()

    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;.jsonl" in html
