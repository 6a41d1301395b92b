from django.apps import AppConfig


class LabelingConfig(AppConfig):
    """Campaigns, tasks, assignment, judgements, aggregation, datasets and exports."""

    name = "labeling"
