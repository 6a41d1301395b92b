"""Live progress of training runs over websockets, for managers only.

A page opens ``ws/training/runs/<id>/`` (one run) or ``ws/training/rounds/<id>/`` (every run of a
round) and receives JSON messages:

- ``{"type": "runs", "runs": [run_payload, ...]}``: the state of its runs (status, progress, ETA,
  latest metrics; see ``training.realtime.run_payload``), on connect and whenever one changes;
- ``{"type": "points", "run_id": ..., "points": [{"id", "kind", "step", "values"}, ...]}``: metric
  points not sent yet, oldest first, for the charts;
- round pages only: ``{"type": "round", "round": round_payload}``: the round's own status (see
  ``training.realtime.round_payload``), on connect and whenever it changes.

Group messages (``training.realtime.notify_run``) bring state changes at once when the worker and
the web server share a channel layer (Redis). The worker is a separate process, so with the
in-memory layer they never arrive; the consumer therefore also reads its runs from the database
every ``TRAINING_LIVE_POLL_SECONDS`` and sends what changed, which also makes it the one source of
metric points (no duplicates, none missed across reconnects: the page says the last point it has).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from rlhf_platform.roles import user_is_manager
from training import selectors
from training.realtime import round_group, run_group

# Close codes (4000-4999 are the application's): the page shows why and does not reconnect.
NOT_ALLOWED, NOT_FOUND = 4403, 4404


class TrainingProgressConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not await database_sync_to_async(user_is_manager)(user):
            await self.close(code=NOT_ALLOWED)
            return
        kwargs = self.scope["url_route"]["kwargs"]
        self.round_id = kwargs.get("round_id")
        if self.round_id is not None:
            self.run_ids = await database_sync_to_async(selectors.round_run_ids)(self.round_id)
            self.groups_joined = [round_group(self.round_id)]
        else:
            self.run_ids = await database_sync_to_async(selectors.existing_run_ids)([kwargs["run_id"]])
            self.groups_joined = [run_group(kwargs["run_id"])]
        if not self.run_ids:
            await self.close(code=NOT_FOUND)
            return
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        self.sent_runs: dict[int, dict[str, Any]] = {}
        self.sent_round: dict[str, Any] | None = None
        # The page says which metric point it already has (?after=<id>), so a reconnect misses none.
        self.last_point_id = _after(self.scope.get("query_string", b""))
        self.poller = asyncio.create_task(self._poll())

    async def disconnect(self, code: int) -> None:
        poller = getattr(self, "poller", None)
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        """Pages only listen; anything they send is ignored, unparsed (a message nested thousands
        deep would otherwise crash the consumer in ``json.loads``)."""

    async def run_update(self, event: dict[str, Any]) -> None:
        run = event["run"]
        if run["id"] in self.run_ids:
            await self._send_runs([run])

    async def round_update(self, event: dict[str, Any]) -> None:
        if event["round"]["id"] == self.round_id:
            await self._send_round(event["round"])

    async def _poll(self) -> None:
        interval = settings.TRAINING_LIVE_POLL_SECONDS
        while True:
            runs, points = await database_sync_to_async(selectors.live_state)(self.run_ids, self.last_point_id)
            await self._send_runs(runs)
            if points:
                self.last_point_id = points[-1]["id"]
                for run_id in self.run_ids:
                    of_run = [point for point in points if point["run_id"] == run_id]
                    if of_run:
                        await self.send_json({"type": "points", "run_id": run_id, "points": of_run})
            if self.round_id is not None:
                round_ = await database_sync_to_async(selectors.round_state)(self.round_id)
                if round_ is not None:
                    await self._send_round(round_)
            await asyncio.sleep(interval)

    async def _send_runs(self, runs: list[dict[str, Any]]) -> None:
        changed = []
        for run in runs:
            state = {key: value for key, value in run.items() if key not in ("point", "heartbeat_at")}
            if self.sent_runs.get(run["id"]) != state:
                self.sent_runs[run["id"]] = state
                changed.append(state)
        if changed:
            await self.send_json({"type": "runs", "runs": changed})

    async def _send_round(self, round_: dict[str, Any]) -> None:
        if round_ != self.sent_round:
            self.sent_round = round_
            await self.send_json({"type": "round", "round": round_})


def _after(query_string: bytes) -> int:
    values = parse_qs(query_string.decode("latin-1")).get("after", ["0"])
    try:
        return max(int(values[0]), 0)
    except ValueError:
        return 0
