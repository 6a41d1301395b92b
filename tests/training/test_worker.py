"""The worker against a scripted executor: event persistence, failures stopping a round, realtime messages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from tests.training.conftest import FAST_SETTINGS
from training.models import JobStatus, Round, RunMetric
from training.realtime import RUNS_GROUP, round_group, run_group
from training.services.rounds import round_launch
from training.worker import Worker


class ScriptedHandle:
    def __init__(self, events: list[dict], exit_code: int) -> None:
        self._events, self._exit_code = events, exit_code
        self.terminated = False

    def events(self):
        yield from self._events

    def poll(self) -> int:
        return self._exit_code

    def wait(self) -> int:
        return self._exit_code

    def terminate(self) -> None:
        self.terminated = True

    def log_tail(self) -> str:
        return "engine log line 1\nTraceback: the last line"


class ScriptedExecutor:
    """Plays back one script of events per start, recording the spec paths it was given."""

    def __init__(self, *scripts: tuple[list[dict], int]) -> None:
        self.scripts = list(scripts)
        self.started: list[Path] = []

    def start(self, spec_path: Path, workdir: Path) -> ScriptedHandle:
        self.started.append(spec_path)
        events, exit_code = self.scripts.pop(0)
        return ScriptedHandle(events, exit_code)


def launch_sft_dpo(tiny_model, dataset, manager) -> Round:
    return round_launch(
        name="scripted",
        preset=Round.Preset.SFT_DPO,
        base_model=tiny_model,
        dataset=dataset,
        launched_by=manager,
        settings=FAST_SETTINGS,
        evaluate=False,
    )


@pytest.mark.django_db(transaction=True)
def test_a_failed_stage_stops_the_round_with_the_reason(tiny_model, preference_snapshot, manager):
    events = [
        {"event": "started", "stage": "sft"},
        {"event": "progress", "step": 1, "total_steps": 2, "epoch": 0.5, "tokens_seen": 40, "eta_s": 1.0},
        {"event": "metrics", "step": 1, "epoch": 0.5, "loss": 5.5, "learning_rate": 1e-5, "note": "text is dropped"},
        {"event": "eval", "step": 1, "eval_loss": 5.9},
        {"event": "failed", "error": "RuntimeError: out of memory", "error_type": "RuntimeError"},
    ]
    executor = ScriptedExecutor((events, 1))
    round_ = launch_sft_dpo(tiny_model, preference_snapshot, manager)
    assert Worker(executor=executor, heartbeat_s=0.2, log=lambda m: None).run_once()

    sft, dpo = round_.runs.order_by("position")
    assert executor.started == [Path(sft.workdir) / "spec.json"]
    assert (sft.status, sft.error) == (JobStatus.FAILED, "RuntimeError: out of memory")
    assert (sft.step, sft.total_steps, sft.tokens_seen, sft.epoch) == (1, 2, 40, 0.5)
    assert sft.latest_metrics == {"loss": 5.5, "learning_rate": 1e-5, "eval_loss": 5.9}
    assert list(RunMetric.objects.filter(run=sft).values_list("kind", "step")) == [("train", 1), ("eval", 1)]
    assert "the last line" in sft.log_tail
    round_.refresh_from_db()
    assert round_.status == Round.Status.FAILED
    assert round_.failure_reason == "The sft stage failed: RuntimeError: out of memory"
    assert dpo.status == JobStatus.CANCELLED and dpo.error.startswith("Not run: The sft stage failed")
    # The spec the engine got: the exported chosen responses as SFT rows, the platform's wiring.
    spec = sft.spec
    assert spec["stage"] == "sft" and spec["model"] == tiny_model.path and spec["adapter"] == {"method": "full"}
    first_row = Path(spec["dataset"]).read_text().splitlines()[0]
    assert '"completion": "good' in first_row and "rejected" not in first_row


@pytest.mark.django_db(transaction=True)
def test_an_engine_that_dies_without_a_result_fails_the_run_with_its_last_log_line(
    tiny_model, preference_snapshot, manager
):
    executor = ScriptedExecutor(([{"event": "started"}], -9))
    round_ = launch_sft_dpo(tiny_model, preference_snapshot, manager)
    Worker(executor=executor, heartbeat_s=0.2, log=lambda m: None).run_once()
    sft = round_.runs.get(position=0)
    assert sft.status == JobStatus.FAILED
    assert sft.error == "The engine exited with status -9 without a result (Traceback: the last line)."


async def drain(layer, channel: str) -> list[dict]:
    messages = []
    while True:
        try:
            messages.append(await asyncio.wait_for(layer.receive(channel), timeout=0.2))
        except TimeoutError:
            return messages


@pytest.mark.django_db(transaction=True)
def test_it_sends_run_updates_to_the_run_round_and_list_groups_on_commit(tiny_model, preference_snapshot, manager):
    layer = get_channel_layer()
    round_ = launch_sft_dpo(tiny_model, preference_snapshot, manager)
    sft = round_.runs.get(position=0)
    channels = {}
    for group in (run_group(sft.pk), round_group(round_.pk), RUNS_GROUP):
        channels[group] = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(group, channels[group])
    events = [{"event": "metrics", "step": 1, "loss": 2.5}, {"event": "failed", "error": "boom"}]
    Worker(executor=ScriptedExecutor((events, 1)), heartbeat_s=0.2, log=lambda m: None).run_once()

    for group, channel in channels.items():
        received = async_to_sync(drain)(layer, channel)
        messages = [message for message in received if message["type"] == "run.update"]
        # The round's own status goes to its group only: running when its first run starts, then failed.
        round_statuses = [m["round"]["status"] for m in received if m["type"] == "round.update"]
        assert round_statuses == (["running", "failed"] if group == round_group(round_.pk) else []), group
        # The log tail goes to the pages of the run (its own and its round's), not to the list.
        logs = [m for m in received if m["type"] == "log.update"]
        assert all(m["run_id"] == sft.pk for m in logs) and (group != RUNS_GROUP or not logs), group
        assert messages and len(messages) + len(round_statuses) + len(logs) == len(received), group
        own = [m["run"] for m in messages if m["run"]["id"] == sft.pk]
        assert own[0]["status"] == "running" and own[-1]["status"] == "failed", group
        point_id = sft.metric_points.get().pk
        point = {"id": point_id, "kind": "train", "step": 1, "values": {"loss": 2.5}}
        assert point in [run.get("point") for run in own]
        assert own[-1]["error"] == "boom" and own[-1]["round_id"] == round_.pk
