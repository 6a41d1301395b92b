"""Rendering responses to safe HTML once, in the background, instead of each time one is shown.

An import stores responses as text only, so that it stays fast. This pass renders the ones
not yet rendered by the current renderer (``labeling.rendering.RENDERER_VERSION``) in
batches; ``manage.py worker`` runs it when it has no job, and ``manage.py render_responses``
runs it by hand. Until a response is rendered, handing out its task renders it on the spot,
so the pass only saves work and changes nothing a reviewer sees.
"""

from __future__ import annotations

from django.db import connection, transaction

from labeling.models import Response
from labeling.rendering import RENDERER_VERSION, render_markdown

BATCH_SIZE = 500
_STORE_HTML = "UPDATE labeling_response SET html = %s, rendered_with = %s WHERE id = %s"


def responses_render_pending(*, batch_size: int = BATCH_SIZE, max_batches: int | None = None) -> int:
    """Render and store the responses not yet rendered by the current renderer; returns how many.

    Each batch is its own transaction, with its rows locked and others' locked rows skipped,
    so several workers can share the work. ``max_batches`` bounds one call's work.
    """
    rendered, batches = 0, 0
    while max_batches is None or batches < max_batches:
        with transaction.atomic():
            pending = list(
                Response.objects.filter(rendered_with__lt=RENDERER_VERSION)
                .order_by("pk")
                .select_for_update(skip_locked=True)
                .values_list("pk", "text")[:batch_size]
            )
            if not pending:
                break
            rows = [(render_markdown(text, cache=False), RENDERER_VERSION, pk) for pk, text in pending]
            with connection.cursor() as cursor:
                # Plain parameters, one statement per row (pipelined on PostgreSQL): the ORM's
                # bulk_update costs more than the rendering itself.
                cursor.executemany(_STORE_HTML, rows)
        rendered += len(pending)
        batches += 1
    return rendered
