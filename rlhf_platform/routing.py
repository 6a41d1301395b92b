"""Websocket routes of every app, joined in one list for the ASGI router."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
