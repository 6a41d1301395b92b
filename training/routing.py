"""Websocket routes of the training pages."""

from django.urls import path

from training.consumers import TrainingProgressConsumer

websocket_urlpatterns = [
    path("ws/training/runs/<id:run_id>/", TrainingProgressConsumer.as_asgi()),
    path("ws/training/rounds/<id:round_id>/", TrainingProgressConsumer.as_asgi()),
]
