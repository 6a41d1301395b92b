import json

import pytest
from channels.testing import HttpCommunicator, WebsocketCommunicator

from rlhf_platform.asgi import application


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_serves_http_through_the_asgi_application():
    communicator = HttpCommunicator(application, "GET", "/healthz", headers=[(b"host", b"127.0.0.1")])
    response = await communicator.get_response()
    assert response["status"] == 200
    assert json.loads(response["body"]) == {"status": "ok", "database": "ok"}


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_refuses_websockets_from_foreign_origins():
    communicator = WebsocketCommunicator(
        application, "/ws/anything/", headers=[(b"host", b"127.0.0.1"), (b"origin", b"https://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()
