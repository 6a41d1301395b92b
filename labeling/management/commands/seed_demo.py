from django.core.management.base import BaseCommand
from django.db.models import Sum

from labeling.services.demo import demo_data_ensure


class Command(BaseCommand):
    help = "Create the demo project and campaigns (idempotent). Run create_demo_users first."

    def handle(self, *args, **options) -> None:
        for campaign in demo_data_ensure():
            counts = campaign.tasks.aggregate(judgements=Sum("judgement_count"))
            self.stdout.write(
                f"  campaign  {campaign.slug:<16} {campaign.tasks.count():>4} tasks, "
                f"{counts['judgements'] or 0:>4} judgements, {campaign.status}"
            )
