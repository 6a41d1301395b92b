"""Websocket routes of every app, joined in one list for the ASGI router.

A path no route matches (an unknown page, or an id beyond any database id) is refused at the
handshake, as an HTTP request for it gets a 404; without the catch-all, the router raises and the
server logs an error for every such connection.
"""

from channels.generic.websocket import WebsocketConsumer
from django.urls import URLPattern, re_path

from training.routing import websocket_urlpatterns as training_websockets


class NoSuchRouteConsumer(WebsocketConsumer):
    def connect(self) -> None:
        self.close()  # before accepting: the handshake is refused (HTTP 403)


websocket_urlpatterns: list[URLPattern] = [*training_websockets, re_path(r"", NoSuchRouteConsumer.as_asgi())]
