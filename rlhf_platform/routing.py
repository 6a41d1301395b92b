"""Websocket routes of every app, joined in one list for the ASGI router."""

from django.urls import URLPattern

from training.routing import websocket_urlpatterns as training_websockets

websocket_urlpatterns: list[URLPattern] = [*training_websockets]
