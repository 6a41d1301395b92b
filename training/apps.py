from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """Model registry, training runs and rounds, the worker and its executors.

    ``training.engine`` is the Django-free trainer the worker runs in a subprocess.
    """

    name = "training"
