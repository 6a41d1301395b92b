"""Live progress: the websocket (managers only, state and metric points), the run and round pages, charts."""

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from rlhf_platform.roles import Role
from tests.training.conftest import first_run
from training.charts import metric_charts
from training.models import JobStatus, ModelArtifact, Round, RunMetric, TrainingRun
from training.routing import websocket_urlpatterns

application = URLRouter(websocket_urlpatterns)


async def connect(path, user):
    communicator = WebsocketCommunicator(application, path)
    communicator.scope["user"] = user
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_manager_receives_the_run_state_then_progress_and_new_metric_points(
    training_round, make_user, settings
):
    settings.TRAINING_LIVE_POLL_SECONDS = 0.05
    manager = await sync_to_async(make_user)("mona", role=Role.MANAGER)
    run = await sync_to_async(first_run)(training_round)
    communicator, connected, _ = await connect(f"/ws/training/runs/{run.pk}/", manager)
    assert connected
    first = await communicator.receive_json_from(timeout=5)
    assert first["type"] == "runs" and first["runs"][0]["status"] == "queued"

    def advance():
        TrainingRun.objects.filter(pk=run.pk).update(status=JobStatus.RUNNING, step=3, total_steps=10, eta_s=12.0)
        return RunMetric.objects.create(run_id=run.pk, step=3, values={"loss": 1.25}).pk

    point_id = await sync_to_async(advance)()
    messages = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
    by_type = {message["type"]: message for message in messages}
    assert by_type["runs"]["runs"][0] | {"status": "running", "step": 3, "progress": 0.3} == by_type["runs"]["runs"][0]
    assert by_type["points"]["points"] == [
        {"id": point_id, "run_id": run.pk, "kind": "train", "step": 3, "values": {"loss": 1.25}}
    ]
    # Nothing changed: nothing more is sent.
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_round_page_follows_every_run_of_the_round_and_resumes_after_the_points_it_has(
    training_round, make_user, settings
):
    settings.TRAINING_LIVE_POLL_SECONDS = 0.05
    manager = await sync_to_async(make_user)("mona", role=Role.MANAGER)
    run = await sync_to_async(first_run)(training_round)
    seen = await sync_to_async(RunMetric.objects.create)(run_id=run.pk, step=1, values={"loss": 2.0})
    await sync_to_async(RunMetric.objects.create)(run_id=run.pk, step=2, values={"loss": 1.5})
    communicator, connected, _ = await connect(f"/ws/training/rounds/{training_round.pk}/?after={seen.pk}", manager)
    assert connected
    messages = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
    by_type = {message["type"]: message for message in messages}
    assert [r["stage"] for r in by_type["runs"]["runs"]] == ["sft", "dpo"]
    assert [point["step"] for point in by_type["points"]["points"]] == [2]
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_reviewers_strangers_and_missing_runs_are_refused(training_round, make_user):
    reviewer = await sync_to_async(make_user)("rita", role=Role.REVIEWER)
    run = await sync_to_async(first_run)(training_round)
    for user in (reviewer, AnonymousUser()):
        _, connected, code = await connect(f"/ws/training/runs/{run.pk}/", user)
        assert not connected and code == 4403
    manager = await sync_to_async(make_user)("mona", role=Role.MANAGER)
    _, connected, code = await connect("/ws/training/runs/999999/", manager)
    assert not connected and code == 4404


def test_the_pages_are_for_managers_only(training_round, manager_client, reviewer_client):
    run = first_run(training_round)
    RunMetric.objects.create(run=run, step=1, values={"loss": 2.0, "learning_rate": 1e-4})
    RunMetric.objects.create(run=run, step=2, values={"loss": 1.5})
    RunMetric.objects.create(run=run, step=2, kind=RunMetric.Kind.EVAL, values={"eval_loss": 1.7})
    pages = [
        "/training/",
        f"/training/rounds/{training_round.pk}/",
        f"/training/rounds/{training_round.pk}/live/",
        f"/training/runs/{run.pk}/",
        f"/training/runs/{run.pk}/live/",
        "/training/models/",
    ]
    for url in pages:
        assert manager_client.get(url).status_code == 200, url
        assert reviewer_client.get(url).status_code == 403, url
    page = manager_client.get(f"/training/runs/{run.pk}/").content.decode()
    assert 'aria-label="loss by step"' in page and 'aria-label="eval_loss by step"' in page
    assert f'data-ws-url="/ws/training/runs/{run.pk}/"' in page


def test_metric_charts_put_the_loss_first_and_share_a_chart_between_training_and_evaluation():
    series = {
        "train": {"learning_rate": [(1, 1e-4), (2, 5e-5)], "loss": [(1, 2.0), (2, 1.0), (3, 0.5)]},
        "eval": {"loss": [(2, 1.5)]},
    }
    charts = metric_charts(series)
    assert [chart["name"] for chart in charts] == ["loss", "learning_rate"]
    loss = charts[0]
    assert [line["kind"] for line in loss["lines"]] == ["eval", "train"]
    train = next(line for line in loss["lines"] if line["kind"] == "train")
    xs = [float(point.split(",")[0]) for point in train["points"].split()]
    ys = [float(point.split(",")[1]) for point in train["points"].split()]
    assert xs == sorted(xs) and xs[0] == loss["plot"]["left"] and xs[-1] == loss["plot"]["right"]
    assert ys[0] == loss["plot"]["top"] and ys[-1] == loss["plot"]["bottom"]  # 2.0 is the highest, 0.5 the lowest
    assert loss["latest"] == "0.500"
    assert metric_charts({}) == []


def test_a_manager_cancels_and_resumes_a_run_from_its_page(training_round, manager_client, reviewer_client):
    run = first_run(training_round)
    assert reviewer_client.post(f"/training/runs/{run.pk}/cancel/").status_code == 403
    response = manager_client.post(f"/training/runs/{run.pk}/cancel/", follow=True)
    assert response.status_code == 200 and "Cancelled." in response.content.decode()
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    assert "Resume from the last checkpoint" in response.content.decode()
    manager_client.post(f"/training/runs/{run.pk}/resume/")
    run.refresh_from_db()
    assert (run.status, run.resume_from) == (JobStatus.QUEUED, "latest")
    again = manager_client.post(f"/training/runs/{run.pk}/resume/", follow=True).content.decode()
    assert "Only interrupted, cancelled or failed runs can resume" in again


def test_the_models_page_puts_evaluation_results_side_by_side(manager_client, tmp_path):
    ModelArtifact.objects.create(name="base", path=str(tmp_path))
    ModelArtifact.objects.create(name="sft", path=str(tmp_path), evaluation={"eval_loss": 2.5, "global_step": 10})
    ModelArtifact.objects.create(name="dpo", path=str(tmp_path), evaluation={"eval_loss": 2.25, "eval_margin": 0.5})
    response = manager_client.get("/training/models/")
    comparison = response.context["comparison"]
    assert [model.name for model in comparison["models"]] == ["dpo", "sft"]  # newest first; "base" has none
    assert comparison["rows"][0] == {"name": "eval_loss", "values": [2.25, 2.5]}
    assert {"name": "eval_margin", "values": [0.5, None]} in comparison["rows"]
    assert "Evaluation results side by side" in response.content.decode()


def test_a_manager_cancels_a_whole_round_from_its_page(training_round, manager_client, reviewer_client):
    url = f"/training/rounds/{training_round.pk}/cancel/"
    assert "Cancel round" in manager_client.get(f"/training/rounds/{training_round.pk}/").content.decode()
    assert reviewer_client.post(url).status_code == 403
    page = manager_client.post(url, follow=True).content.decode()
    assert "The round stops" in page
    training_round.refresh_from_db()
    assert training_round.status == Round.Status.CANCELLED
    assert set(training_round.runs.values_list("status", flat=True)) == {JobStatus.CANCELLED}
    again = manager_client.post(url, follow=True).content.decode()
    assert "nothing to cancel" in again
