"""The ASGI application answers the lifespan protocol, so uvicorn starts without "ASGI 'lifespan'
protocol appears unsupported" and stops cleanly."""

import pytest
from asgiref.testing import ApplicationCommunicator

from rlhf_platform.asgi import application


@pytest.mark.asyncio
async def test_it_completes_startup_and_shutdown():
    communicator = ApplicationCommunicator(application, {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}})

    await communicator.send_input({"type": "lifespan.startup"})
    assert await communicator.receive_output(timeout=5) == {"type": "lifespan.startup.complete"}
    await communicator.send_input({"type": "lifespan.shutdown"})
    assert await communicator.receive_output(timeout=5) == {"type": "lifespan.shutdown.complete"}
    await communicator.wait(timeout=5)
