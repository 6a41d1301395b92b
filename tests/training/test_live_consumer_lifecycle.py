"""A live page's database poll lives exactly as long as its socket: it ends when the socket closes,
when the consumer crashes (a channel layer that fails, a send to a socket already gone), and when
the poll itself fails (the page is told, by a close, and reconnects)."""

import asyncio
import logging

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from rlhf_platform.roles import Role
from tests.training.conftest import first_run
from training import selectors
from training.consumers import TrainingProgressConsumer
from training.realtime import run_group
from training.routing import websocket_urlpatterns

application = URLRouter(websocket_urlpatterns)


def polling_tasks() -> list[asyncio.Task]:
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and task.get_coro().__qualname__ == f"{TrainingProgressConsumer.__name__}._poll"
    ]


@pytest.fixture
def counted_polls(monkeypatch) -> list[int]:
    """Counts the live pages' database reads (one per poll)."""
    calls: list[int] = []
    live_state = selectors.live_state

    def counting(run_ids, after_point_id):
        calls.append(1)
        return live_state(run_ids, after_point_id)

    monkeypatch.setattr(selectors, "live_state", counting)
    return calls


async def open_run_page(training_round, make_user, *, app=application):
    manager = await sync_to_async(make_user)("mona", role=Role.MANAGER)
    run = await sync_to_async(first_run)(training_round)
    communicator = WebsocketCommunicator(app, f"/ws/training/runs/{run.pk}/")
    communicator.scope["user"] = manager
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "runs"
    return communicator, run


async def assert_no_poll_left(counted_polls: list[int]) -> None:
    assert polling_tasks() == []
    before = len(counted_polls)
    await asyncio.sleep(0.3)  # six poll intervals
    assert len(counted_polls) == before, "a closed socket's poll still reads the database"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_stops_polling_when_the_page_goes_away(training_round, make_user, settings, counted_polls):
    settings.TRAINING_LIVE_POLL_SECONDS = 0.05
    communicator, _ = await open_run_page(training_round, make_user)
    assert len(polling_tasks()) == 1
    await communicator.disconnect()
    await assert_no_poll_left(counted_polls)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_stops_polling_when_the_channel_layer_fails(
    training_round, make_user, settings, counted_polls, monkeypatch
):
    """redis-py 8 with channels-redis 4.3 raised TimeoutError out of the consumer every 5 s of quiet:
    the consumer died without its ``disconnect`` and its poll ran on, with no page to send to."""
    settings.TRAINING_LIVE_POLL_SECONDS = 0.05

    async def failing_receive(self, channel):
        await asyncio.sleep(0.5)
        raise TimeoutError("Timeout reading from 127.0.0.1:6379")

    monkeypatch.setattr(InMemoryChannelLayer, "receive", failing_receive)
    communicator, _ = await open_run_page(training_round, make_user)
    with pytest.raises(TimeoutError):
        await communicator.wait(timeout=5)
    await assert_no_poll_left(counted_polls)


class ClientDisconnected(OSError):
    """What uvicorn raises when the application sends to a socket the client has closed."""


def socket_gone_after(messages: int):
    """The application behind a server whose client leaves after ``messages`` websocket messages."""

    async def app(scope, receive, send):
        sent = 0

        async def sending(message):
            nonlocal sent
            if message["type"] == "websocket.send":
                sent += 1
                if sent > messages:
                    raise ClientDisconnected
            await send(message)

        await application(scope, receive, sending)

    return app


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_stops_polling_when_a_send_finds_the_socket_gone(training_round, make_user, settings, counted_polls):
    settings.TRAINING_LIVE_POLL_SECONDS = 0.05
    communicator, run = await open_run_page(training_round, make_user, app=socket_gone_after(1))
    layer = get_channel_layer()
    update = {"id": run.pk, "status": "running", "step": 1, "total_steps": 10}
    await layer.group_send(run_group(run.pk), {"type": "run.update", "run": update})
    with pytest.raises(ClientDisconnected):
        await communicator.wait(timeout=5)
    await assert_no_poll_left(counted_polls)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_failing_poll_closes_the_socket_so_the_page_reconnects(
    training_round, make_user, settings, counted_polls, monkeypatch, caplog
):
    settings.TRAINING_LIVE_POLL_SECONDS = 0.05
    communicator, _ = await open_run_page(training_round, make_user)

    def broken(run_ids, after_point_id):
        counted_polls.append(1)
        raise RuntimeError("database went away")

    monkeypatch.setattr(selectors, "live_state", broken)
    with caplog.at_level(logging.ERROR, logger="training.consumers"):
        closed = await communicator.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": 1011}
        await asyncio.sleep(0.1)
    assert "database went away" in caplog.text
    await assert_no_poll_left(counted_polls)
    await communicator.disconnect()
