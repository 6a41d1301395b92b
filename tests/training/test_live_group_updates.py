"""Metric points and the log tail reach a live page through the run's group at once, the database
poll being only a safety net: each point arrives once, whichever way it came, and none is missed."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from rlhf_platform.roles import Role
from tests.training.conftest import first_run
from training.models import JobStatus, RunMetric, TrainingRun
from training.routing import websocket_urlpatterns
from training.services.jobs import job_heartbeat
from training.services.runs import run_record_event

application = URLRouter(websocket_urlpatterns)


async def open_page(path: str, manager) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path)
    communicator.scope["user"] = manager
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


async def messages_for(communicator: WebsocketCommunicator, seconds: float) -> list[dict]:
    """What the page receives within ``seconds``. (Waiting on an empty queue with a timeout would
    cancel the application: asgiref's communicator does that on timeout.)"""
    await asyncio.sleep(seconds)
    messages = []
    while not communicator.output_queue.empty():
        messages.append(json.loads((await communicator.receive_output())["text"]))
    return messages


def start(run: TrainingRun) -> TrainingRun:
    run.status = JobStatus.RUNNING
    run.save(update_fields=["status"])
    return run


def sent_points(messages: list[dict]) -> list[dict]:
    return [point for message in messages if message["type"] == "points" for point in message["points"]]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("page", ["run", "round"])
async def test_points_and_the_log_tail_arrive_by_group_message_with_the_poll_long(
    training_round, make_user, settings, page
):
    settings.TRAINING_LIVE_POLL_SECONDS = 300
    manager = await sync_to_async(make_user)("mona", role=Role.MANAGER)
    run = await sync_to_async(start)(await sync_to_async(first_run)(training_round))
    path = f"/ws/training/runs/{run.pk}/" if page == "run" else f"/ws/training/rounds/{training_round.pk}/"
    communicator = await open_page(path, manager)
    await messages_for(communicator, 0.3)  # the state on connect

    await sync_to_async(run_record_event)(run=run, event={"event": "metrics", "step": 3, "loss": 1.25})
    await sync_to_async(job_heartbeat)(job=run, log_tail="\x1b[32mstep 3\x1b[0m loss 1.25\n")
    messages = await messages_for(communicator, 1)

    point_id = await sync_to_async(lambda: RunMetric.objects.get(run=run).pk)()
    assert sent_points(messages) == [
        {"id": point_id, "run_id": run.pk, "kind": "train", "step": 3, "values": {"loss": 1.25}}
    ]
    logs = [message for message in messages if message["type"] == "log"]
    # As a terminal shows it (colour escapes gone); the page writes it as text, never as HTML.
    assert logs == [{"type": "log", "run_id": run.pk, "text": "step 3 loss 1.25\n"}]
    runs = [run_state for message in messages if message["type"] == "runs" for run_state in message["runs"]]
    assert runs[-1]["latest_metrics"] == {"loss": 1.25}

    # The same log again is not news.
    await sync_to_async(job_heartbeat)(job=run, log_tail="\x1b[32mstep 3\x1b[0m loss 1.25\n")
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_each_point_arrives_once_whether_by_group_or_by_poll_and_a_lost_message_is_caught_up(
    training_round, make_user, settings
):
    settings.TRAINING_LIVE_POLL_SECONDS = 0.5
    manager = await sync_to_async(make_user)("mona", role=Role.MANAGER)
    run = await sync_to_async(start)(await sync_to_async(first_run)(training_round))
    before = await sync_to_async(RunMetric.objects.create)(run=run, step=1, values={"loss": 3.0})
    communicator = await open_page(f"/ws/training/runs/{run.pk}/", manager)
    # Stored without a group message, as when the message was lost (Redis restarting).
    lost = await sync_to_async(RunMetric.objects.create)(run=run, step=2, values={"loss": 2.0})
    for step in (3, 4):
        await sync_to_async(run_record_event)(run=run, event={"event": "metrics", "step": step, "loss": 1.0 / step})
    messages = await messages_for(communicator, 1.5)

    ids = [point["id"] for point in sent_points(messages)]
    stored = await sync_to_async(
        lambda: list(RunMetric.objects.filter(run=run).order_by("pk").values_list("pk", flat=True))
    )()
    assert sorted(ids) == stored and len(stored) == 4 and before.pk in ids and lost.pk in ids
    await communicator.disconnect()

    # A page back after a drop says what it has: it gets the rest, once.
    await sync_to_async(run_record_event)(run=run, event={"event": "metrics", "step": 5, "loss": 0.2})
    communicator = await open_page(f"/ws/training/runs/{run.pk}/?after={stored[-1]}", manager)
    messages = await messages_for(communicator, 1.2)
    assert [point["step"] for point in sent_points(messages)] == [5]
    await communicator.disconnect()
