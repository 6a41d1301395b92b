"""Live progress of training runs over websockets, for managers only.

A page opens ``ws/training/runs/<id>/`` (one run) or ``ws/training/rounds/<id>/`` (every run of a
round) and receives JSON messages:

- ``{"type": "runs", "runs": [run_payload, ...]}``: the state of its runs (status, progress, ETA,
  latest metrics; see ``training.realtime.run_payload``), on connect and whenever one changes;
- ``{"type": "points", "run_id": ..., "points": [{"id", "kind", "step", "values"}, ...]}``: metric
  points not sent yet, oldest first, for the charts; each point is sent once;
- ``{"type": "log", "run_id": ..., "text": ...}``: the run's log tail as a terminal shows it
  (``training.formatting.terminal_text``), whenever it changes; plain text for the page to show as text;
- round pages only: ``{"type": "round", "round": round_payload}``: the round's own status (see
  ``training.realtime.round_payload``), on connect and whenever it changes.

Group messages (``training.realtime``) bring state changes, metric points and log tails at once when
the worker and the web server share a channel layer (Redis). The worker is a separate process, so
with the in-memory layer they never arrive; the consumer therefore also reads its runs and new
points from the database every ``TRAINING_LIVE_POLL_SECONDS`` (fast by default without Redis, a slow
safety net with it) and sends what changed. Points are never sent twice nor missed, whichever way
they come: the page says the last point it has (``?after=<id>``), the poll reads from the highest id
below which everything was sent, and a point the group brought first is remembered until the poll
passes it.

The poll is a task of the consumer's own and ends with it, however it ends: the page leaving, the
channel layer failing, a send to a socket already gone. A poll that fails closes the socket (1011),
so the page reconnects to a fresh one instead of staying open and silent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from rlhf_platform.roles import user_is_manager
from training import selectors
from training.formatting import terminal_text
from training.realtime import round_group, run_group

logger = logging.getLogger(__name__)

# Close codes (4000-4999 are the application's): the page shows why and does not reconnect.
NOT_ALLOWED, NOT_FOUND = 4403, 4404


class TrainingProgressConsumer(AsyncJsonWebsocketConsumer):
    poller: asyncio.Task | None = None

    async def __call__(self, scope, receive, send) -> None:
        # ``disconnect`` runs only when the server says the socket closed; a consumer that dies of an
        # exception (its channel layer failing, a send to a socket already gone) never gets there.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stop_polling()

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
        # Joined before the first read, so a point stored after that read comes by message.
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        self.sent_runs: dict[int, dict[str, Any]] = {}
        self.sent_logs: dict[int, str] = {}
        self.sent_round: dict[str, Any] | None = None
        # Every point up to this id has been sent (or the page had it: ?after=<id>, so a reconnect
        # misses none); points above it that came by group message first, not to send them twice.
        self.last_point_id = _after(self.scope.get("query_string", b""))
        self.pushed_point_ids: set[int] = set()
        self.poller = asyncio.create_task(self._poll())
        self.poller.add_done_callback(self._poll_ended)

    async def disconnect(self, code: int) -> None:
        await self._stop_polling()
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        """Pages only listen; anything they send is ignored, unparsed (a message nested thousands
        deep would otherwise crash the consumer in ``json.loads``)."""

    async def run_update(self, event: dict[str, Any]) -> None:
        run = event["run"]
        if run["id"] not in self.run_ids:
            return
        await self._send_runs([run])
        point = run.get("point")
        if point is not None and "id" in point:
            fresh = self._unsent_points([{**point, "run_id": run["id"]}])
            self.pushed_point_ids.update(p["id"] for p in fresh)
            await self._send_points(fresh)

    async def log_update(self, event: dict[str, Any]) -> None:
        if event["run_id"] in self.run_ids:
            await self._send_log(event["run_id"], event["log_tail"])

    async def round_update(self, event: dict[str, Any]) -> None:
        if event["round"]["id"] == self.round_id:
            await self._send_round(event["round"])

    async def _poll(self) -> None:
        interval = settings.TRAINING_LIVE_POLL_SECONDS
        try:
            while True:
                runs, points = await database_sync_to_async(selectors.live_state)(self.run_ids, self.last_point_id)
                await self._send_runs(runs)
                fresh = self._unsent_points(points)
                if points:
                    # Everything up to the last point read has now been sent, by this read or by a message.
                    self.last_point_id = max(self.last_point_id, points[-1]["id"])
                    self.pushed_point_ids = {pk for pk in self.pushed_point_ids if pk > self.last_point_id}
                await self._send_points(fresh)
                if self.round_id is not None:
                    round_ = await database_sync_to_async(selectors.round_state)(self.round_id)
                    if round_ is not None:
                        await self._send_round(round_)
                await asyncio.sleep(interval)
        except Exception:
            # A socket left open without its poll would look live and show nothing: close it, and
            # the page reconnects to a fresh consumer.
            await self.close(code=1011)
            raise

    def _poll_ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("live updates of runs %s stopped", self.run_ids, exc_info=task.exception())

    async def _stop_polling(self) -> None:
        poller, self.poller = self.poller, None
        if poller is not None:
            poller.cancel()
            # Waits for it to end without raising what it died of: ``_poll_ended`` logged that.
            await asyncio.wait([poller])

    def _unsent_points(self, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [p for p in points if p["id"] > self.last_point_id and p["id"] not in self.pushed_point_ids]

    async def _send_points(self, points: list[dict[str, Any]]) -> None:
        for run_id in self.run_ids:
            of_run = [point for point in points if point["run_id"] == run_id]
            if of_run:
                await self.send_json({"type": "points", "run_id": run_id, "points": of_run})

    async def _send_runs(self, runs: list[dict[str, Any]]) -> None:
        changed = []
        for run in runs:
            state = {key: value for key, value in run.items() if key not in ("point", "heartbeat_at")}
            if self.sent_runs.get(run["id"]) != state:
                self.sent_runs[run["id"]] = state
                changed.append(state)
        if changed:
            await self.send_json({"type": "runs", "runs": changed})

    async def _send_log(self, run_id: int, log_tail: str) -> None:
        text = terminal_text(log_tail)
        if self.sent_logs.get(run_id) != text:
            self.sent_logs[run_id] = text
            await self.send_json({"type": "log", "run_id": run_id, "text": text})

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
