"""A generation job's progress: its total from the start, one count over both models (never going
back), and a time left once there is a rate."""

from __future__ import annotations

import pytest

from labeling.services.campaigns import project_create
from tests.training.engine.conftest import only, run_spec_in_process, write_jsonl
from training import worker as worker_module
from training.engine.stages import generate
from training.models import GenerationJob, JobStatus, ModelArtifact
from training.services.generation import generation_job_create, generation_job_resume


def test_the_engine_reports_the_total_before_the_model_loads_and_counts_on_from_earlier_models(
    tiny_model_dir, tmp_path, monkeypatch
):
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"id": f"p{i}", "prompt": f"Say {i}"} for i in range(3)])
    progress_when_loading = []
    load_causal_lm = generate.load_causal_lm

    def load_and_record(*args, **kwargs):
        progress_when_loading.append(len(only(events_so_far, "progress")))
        return load_causal_lm(*args, **kwargs)

    monkeypatch.setattr(generate, "load_causal_lm", load_and_record)
    events_so_far: list[dict] = []
    monkeypatch.setattr(
        "training.engine.events.EventStream.emit",
        lambda self, event, **fields: events_so_far.append({"event": event, **fields}) or {},
    )
    spec = {
        "stage": "generate",
        "model": str(tiny_model_dir),
        "output_dir": str(tmp_path / "out"),
        "prompts": str(prompts),
        "num_candidates": 2,
        "max_new_tokens": 4,
        "batch_size": 2,
        "progress_offset": 3,  # the second of two models over these 3 prompts
        "progress_total": 6,
    }
    status, _ = run_spec_in_process(spec)
    assert status == 0
    progress = only(events_so_far, "progress")
    assert progress_when_loading == [1]  # the total was out before the model loaded
    assert [(event["step"], event["total_steps"]) for event in progress] == [(3, 6), (5, 6), (6, 6)]
    assert progress[0]["eta_s"] is None  # no rate yet
    assert all(event["eta_s"] is not None for event in progress[1:])
    assert progress[-1]["eta_s"] == 0


@pytest.mark.django_db(transaction=True)  # the worker's heartbeat thread writes beside the test
def test_a_job_comparing_two_models_counts_both_in_one_total_that_never_goes_back(
    tiny_model, manager, worker, monkeypatch
):
    previous = ModelArtifact.objects.create(name="previous", path=tiny_model.path)
    project = project_create(name="Next round", created_by=manager)
    job = generation_job_create(
        model=tiny_model,
        compare_with=previous,
        campaign_name="A/B",
        project=project,
        launched_by=manager,
        prompts=["Say hi", "Say bye", "Say why"],
        params={"num_candidates": 1, "max_new_tokens": 4, "batch_size": 2},
    )
    assert (job.step, job.total_steps) == (0, 6)  # queued: 3 prompts x 2 models, shown from the start

    recorded = []
    record_progress = worker_module.job_record_progress

    def record(*, job, event):
        record_progress(job=job, event=event)
        recorded.append((job.step, job.total_steps, job.eta_s))

    monkeypatch.setattr(worker_module, "job_record_progress", record)
    assert worker.run_once()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    steps = [step for step, _total, _eta in recorded]
    assert steps == [0, 2, 3, 3, 5, 6]
    assert {total for _step, total, _eta in recorded} == {6}
    assert [eta is not None for _step, _total, eta in recorded] == [False, True, True, False, True, True]
    assert (job.step, job.total_steps) == (6, 6)


@pytest.mark.django_db
def test_a_job_run_again_starts_its_count_over(tiny_model, manager):
    project = project_create(name="Next round", created_by=manager)
    job = generation_job_create(
        model=tiny_model, campaign_name="again", project=project, launched_by=manager, prompts=["a", "b"]
    )
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, step=1, eta_s=30.0)
    job = generation_job_resume(job=GenerationJob.objects.get(pk=job.pk))
    assert (job.status, job.step, job.total_steps, job.eta_s) == (JobStatus.QUEUED, 0, 2, None)


@pytest.mark.django_db
def test_the_training_page_shows_a_jobs_answers_so_far_and_time_left(tiny_model, manager, manager_client):
    project = project_create(name="Next round", created_by=manager)
    job = generation_job_create(
        model=tiny_model, campaign_name="live", project=project, launched_by=manager, prompts=["a", "b", "c"]
    )
    assert (
        '<span class="num">0 / 3</span> <span class="muted">answers</span>'
        in manager_client.get("/training/").content.decode()
    )
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, step=2, eta_s=41.6)
    page = manager_client.get("/training/").content.decode()
    assert '<span class="num">2 / 3</span>' in page and "ETA 42 s" in page
