"""What a newcomer saw on the training pages, mended: numbers for people, charts whose labels fit,
log tails without terminal escapes, and rounds whose status says what they are doing, live."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import transaction

from labeling.charts import CHART_WIDTH, hour_chart, line_chart
from labeling.charts import label_width as labeling_label_width
from rlhf_platform.roles import Role
from tests.training.conftest import first_run
from training.charts import WIDTH, label_width, series_chart
from training.executors import LocalHandle
from training.formatting import format_eta, format_metric, terminal_text
from training.models import JobStatus, ModelArtifact, Round, RunMetric, Stage, TrainingRun
from training.routing import websocket_urlpatterns
from training.services.jobs import job_claim_next
from training.services.rounds import round_advance, run_cancel, run_resume

# What tqdm writes while a bar fills: colour escapes, and redraws of one line after carriage returns.
TQDM_OUTPUT = (
    "\x1b[32mLoading weights\x1b[0m\n"
    "Training:   0%|          | 0/3 [00:00<?, ?it/s]\r"
    "Training:  33%|\x1b[34m███▎\x1b[0m      | 1/3 [00:01<00:02, 1.0it/s]\r"
    "Training: 100%|██████████| 3/3 [00:03<00:00, 1.0it/s]\x1b[K\n"
    "done\n"
)
TQDM_AS_SHOWN = "Loading weights\nTraining: 100%|██████████| 3/3 [00:03<00:00, 1.0it/s]\ndone\n"


@pytest.mark.parametrize(
    ("value", "name", "shown"),
    [
        (4884480.0, "num_parameters", "4.88 M"),
        (4884480, "", "4.88 M"),
        (12345, "tokens_seen", "12.3 k"),
        (999999.0, "", "1.00 M"),
        (0.69314718, "loss", "0.693"),
        (0.77, "rewards/accuracies", "0.770"),
        (1e-4, "learning_rate", "1.00e-04"),
        (5e-7, "train/learning_rate", "5.00e-07"),
        (2.5e-5, "objective/kl", "2.50e-05"),
        (-0.5, "rewards/margins", "-0.500"),
        (12.3456, "grad_norm", "12.3"),
        (3.0, "epoch", "3"),
        (0, "loss", "0"),
        (None, "loss", "—"),
        ("better", "verdict", "better"),
    ],
)
def test_metric_values_are_formatted_for_people(value, name, shown):
    assert format_metric(value, name) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, ""), (0.4, "ETA 0 s"), (42, "ETA 42 s"), (89.4, "ETA 89 s"), (89.6, "ETA 2 min"), (95, "ETA 2 min"), (3000, "ETA 50 min"),
     (9000, "ETA 2.5 h")],
)  # fmt: skip
def test_time_left_is_formatted_for_people(seconds, shown):
    assert format_eta(seconds) == shown


def test_the_run_page_shows_time_left_in_minutes(training_round, manager_client):
    run = first_run(training_round)
    TrainingRun.objects.filter(pk=run.pk).update(status=JobStatus.RUNNING, step=10, total_steps=400, eta_s=1234.5)
    page = manager_client.get(f"/training/runs/{run.pk}/").content.decode()
    assert "ETA 21 min" in page and "1234" not in page


def test_the_round_page_shows_metrics_as_people_read_them(training_round, manager_client):
    TrainingRun.objects.filter(pk=first_run(training_round).pk).update(
        latest_metrics={
            "num_parameters": 4884480,
            "loss": 0.69314718,
            "learning_rate": 1e-4,
            "rewards/accuracies": 0.77,
        }
    )
    for url in (f"/training/rounds/{training_round.pk}/", f"/training/rounds/{training_round.pk}/live/"):
        page = manager_client.get(url).content.decode()
        for shown in ("num_parameters <strong>4.88 M</strong>", "loss <strong>0.693</strong>"):
            assert shown in page, url
        assert "learning_rate <strong>1.00e-04</strong>" in page
        assert "rewards/accuracies <strong>0.770</strong>" in page
        assert "4884480" not in page


def test_the_run_page_charts_label_their_axes_in_the_same_format(training_round, manager_client):
    run = first_run(training_round)
    for step, rate in enumerate((5e-6, 3e-6, 1e-6), start=1):
        RunMetric.objects.create(run=run, step=step, values={"learning_rate": rate, "loss": 0.7 - step / 100})
    page = manager_client.get(f"/training/runs/{run.pk}/").content.decode()
    assert ">1.00e-06</text>" in page and ">5.00e-06</text>" in page
    assert "<strong>0.670</strong>" in page  # the latest loss, in the chart's caption


@pytest.mark.parametrize(
    "values",
    [
        [1e-6, 5e-6],  # "1.00e-06" was drawn as "00e-06": the left margin was too narrow
        [-1.5e-5, 2.5e-5],
        [4884480.0, 5884480.0],
        [0.25, 0.75],
    ],
)
def test_chart_axis_labels_fit_inside_the_drawing(values):
    chart = series_chart("learning_rate", {"train": [(1, values[0]), (12000, values[1])]})
    for tick in chart["y_ticks"]:
        assert chart["y_label_x"] - label_width(tick["label"]) >= 0, tick["label"]
        assert chart["y_label_x"] < chart["plot"]["left"]
    last_step = chart["x_ticks"][-1]
    assert last_step["x"] + label_width(last_step["label"]) / 2 <= WIDTH


def test_chart_ticks_of_a_narrow_range_read_apart():
    chart = series_chart("loss", {"train": [(1, 0.69312), (2, 0.69340), (3, 0.69302)]})
    assert [tick["label"] for tick in chart["y_ticks"]] == ["0.6934", "0.6932", "0.6930"]
    wide = series_chart("loss", {"train": [(1, 0.25), (2, 0.75)]})
    assert [tick["label"] for tick in wide["y_ticks"]] == ["0.750", "0.500", "0.250"]


def test_labeling_chart_labels_fit_inside_the_drawing():
    busy = [{"hour": f"2026-12-04T{hour:02d}:00:00+00:00", "judgements": 12345 * (hour == 3)} for hour in range(24)]
    chart = hour_chart(busy)
    assert chart["left"] - 6 - labeling_label_width(str(chart["peak"])) >= 0
    assert all(bar["x"] >= chart["left"] for bar in chart["bars"])

    days = line_chart([("2026-12-01", 0.2), ("2026-12-02", 0.4), ("2026-12-03", 0.5)])
    first, last = days["points"][0], days["points"][-1]
    assert first["x"] - labeling_label_width(first["label"]) / 2 >= 0
    assert last["x"] + labeling_label_width(last["label"]) / 2 <= CHART_WIDTH


def test_terminal_text_keeps_what_a_terminal_would_show():
    assert terminal_text(TQDM_OUTPUT) == TQDM_AS_SHOWN
    assert terminal_text("a\r\nb") == "a\nb"
    assert terminal_text("\x1b]0;title\x07plain") == "plain"


def test_the_log_tail_shows_no_escape_codes_on_the_page_or_live(training_round, manager_client):
    run = first_run(training_round)
    TrainingRun.objects.filter(pk=run.pk).update(log_tail=TQDM_OUTPUT)
    for url in (f"/training/runs/{run.pk}/", f"/training/runs/{run.pk}/live/"):
        page = manager_client.get(url).content.decode()
        assert "\x1b" not in page and "[32m" not in page, url
        assert "Training: 100%|██████████| 3/3" in page
        assert "Training:  33%" not in page


def test_the_engine_log_tail_is_stored_as_a_terminal_shows_it(tmp_path):
    script = tmp_path / "bar.py"
    script.write_text(f"import sys\nsys.stderr.write({TQDM_OUTPUT!r})\nsys.stderr.flush()\n")
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    handle = LocalHandle(process, tail_lines=50)
    list(handle.events())
    assert handle.wait() == 0
    assert handle.log_tail() == TQDM_AS_SHOWN.rstrip("\n")


# --- a round's own status ------------------------------------------------------------------------


def test_a_round_is_queued_until_one_of_its_runs_starts(training_round, tmp_path):
    other_base = ModelArtifact.objects.create(name="other", path=str(tmp_path))
    earlier = Round.objects.create(name="Earlier round", preset=Round.Preset.SINGLE, base_model=other_base)
    earlier_run = TrainingRun.objects.create(round=earlier, stage=Stage.SFT, input_model=other_base)
    # The earlier round's run was queued first, so the worker takes it first.
    queued_before = first_run(training_round).created_at - timedelta(seconds=1)
    TrainingRun.objects.filter(pk=earlier_run.pk).update(created_at=queued_before)
    assert training_round.status == Round.Status.QUEUED

    assert job_claim_next(model=TrainingRun, worker="w1").pk == earlier_run.pk
    earlier.refresh_from_db(), training_round.refresh_from_db()
    assert (earlier.status, training_round.status) == (Round.Status.RUNNING, Round.Status.QUEUED)

    assert job_claim_next(model=TrainingRun, worker="w1").pk == first_run(training_round).pk
    training_round.refresh_from_db()
    assert training_round.status == Round.Status.RUNNING


def test_a_resumed_round_is_queued_again_until_its_run_starts(training_round, manager_client):
    run = first_run(training_round)
    run_cancel(run=run)
    run_resume(run=run)
    training_round.refresh_from_db()
    assert training_round.status == Round.Status.QUEUED
    page = manager_client.get(f"/training/rounds/{training_round.pk}/").content.decode()
    assert 'data-round-status="queued"' in page and "Cancel round" in page
    job_claim_next(model=TrainingRun, worker="w1")
    training_round.refresh_from_db()
    assert training_round.status == Round.Status.RUNNING


async def receive_round_status(communicator) -> str:
    """The round status in the next ``round`` message (other messages are skipped)."""
    while True:
        message = await communicator.receive_json_from(timeout=5)
        if message["type"] == "round":
            return message["round"]["status_display"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_round_page_websocket_sends_the_rounds_own_status_as_it_changes(training_round, make_user, settings):
    settings.TRAINING_LIVE_POLL_SECONDS = 0.05
    manager = await sync_to_async(make_user)("mona", role=Role.MANAGER)
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/training/rounds/{training_round.pk}/")
    communicator.scope["user"] = manager
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert await receive_round_status(communicator) == "Queued"

    await sync_to_async(job_claim_next)(model=TrainingRun, worker="w1")
    assert await receive_round_status(communicator) == "Running"

    @transaction.atomic  # as in run_succeed, which locks the round
    def every_stage_succeeds():
        training_round.runs.update(status=JobStatus.SUCCEEDED)
        round_advance(round_=training_round)

    await sync_to_async(every_stage_succeeds)()
    assert await receive_round_status(communicator) == "Succeeded"
    await communicator.disconnect()


@pytest.mark.django_db
def test_the_models_page_lists_a_models_numbers_and_not_its_verdict_report(manager_client, tiny_model):
    tiny_model.evaluation = {"eval_loss": 0.5125, "verdict": {"run": 7, "figures": [{"name": "win_rate"}]}}
    tiny_model.save(update_fields=["evaluation"])
    page = manager_client.get("/training/models/").content.decode()
    assert "<th>eval_loss</th>" in page and format_metric(0.5125, "eval_loss") in page
    assert "figures" not in page and "<th>verdict</th>" not in page
