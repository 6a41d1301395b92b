import time

from django.core.management.base import BaseCommand

from labeling.services.prerender import responses_render_pending


class Command(BaseCommand):
    help = (
        "Render responses to safe HTML and store it, for those not yet rendered by the current renderer "
        "(manage.py worker also does this when idle)."
    )

    def handle(self, *args, **options) -> None:
        started = time.perf_counter()
        count = responses_render_pending()
        self.stdout.write(f"Rendered {count} response(s) in {time.perf_counter() - started:.1f} s")
