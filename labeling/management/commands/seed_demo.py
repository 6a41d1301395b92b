from django.core.management.base import BaseCommand

from labeling.services.demo import demo_data_ensure


class Command(BaseCommand):
    help = "Create the demo project and campaigns (idempotent). Run create_demo_users first."

    def handle(self, *args, **options) -> None:
        for campaign in demo_data_ensure():
            self.stdout.write(f"  campaign  {campaign.slug:<16} {campaign.tasks.count()} tasks, {campaign.status}")
