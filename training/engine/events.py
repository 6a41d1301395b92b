"""The event stream: one JSON object per line on stdout, and the trainer callback that feeds it.

Events: ``started``, ``progress``, ``metrics``, ``eval``, ``checkpoint``, ``finished``, ``failed``,
``cancelled``. Each carries ``event`` and ``time`` (Unix seconds). A training stage's first
``metrics`` event (step 0) holds ``trainable_parameters`` and ``total_parameters``; ``finished``
carries the final metrics, with what training cost (``peak_memory_bytes``, ``train_seconds_per_step``,
``train_tokens_per_second``; ``training.engine.runner.cost_figures``). Under
``accelerate launch`` only the main process writes.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

# A progress event at most this often (seconds), plus the first and the last step.
PROGRESS_INTERVAL_S = 1.0


class Cancelled(Exception):
    """A cancel request ended the run after ``checkpoint`` was written."""

    def __init__(self, checkpoint: str | None = None) -> None:
        super().__init__(checkpoint)
        self.checkpoint = checkpoint


class CancelFlag:
    """Set by SIGTERM; training loops check it at the end of each step."""

    def __init__(self) -> None:
        self.requested = False

    def request(self, *_: Any) -> None:
        self.requested = True

    def install_sigterm_handler(self) -> None:
        signal.signal(signal.SIGTERM, self.request)


class EventStream:
    """Writes events as JSON lines to ``out`` (stdout by default), flushed at once.

    When the reader is gone (the worker died and the pipe broke), nobody will persist the run's
    events: writing stops, ``reader_gone`` is called (the run's ``CancelFlag.request``, so it
    stops at the end of the step and writes its checkpoint), and ``emit`` never raises for it.
    """

    def __init__(self, out: TextIO | None = None, *, reader_gone: Callable[[], Any] | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        self.is_main_process = os.environ.get("RANK", "0") == "0"
        self.reader_gone = reader_gone
        self.broken = False

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"event": event, "time": round(time.time(), 3), **{k: _finite(v) for k, v in fields.items()}}
        if self.is_main_process and not self.broken:
            try:
                self.out.write(json.dumps(record, default=_jsonable) + "\n")
                self.out.flush()
            except BrokenPipeError:
                self.broken = True
                if self.reader_gone is not None:
                    self.reader_gone()
        return record


class EventCallback(TrainerCallback):
    """Turns Trainer hooks into events, and stops at the end of a step once a cancel was requested.

    On cancel it asks the Trainer to save a checkpoint and stop; ``cancelled`` is then true.
    """

    def __init__(self, events: EventStream, cancel: CancelFlag, *, raise_on_cancel: bool = False) -> None:
        self.events = events
        self.cancel = cancel
        # PPO's loop ignores should_training_stop; it saves, then the callback raises Cancelled.
        self.raise_on_cancel = raise_on_cancel
        self.cancelled = False
        self.started_at = time.monotonic()
        self.start_step = 0
        self.last_progress_at = 0.0
        self.last_checkpoint: str | None = None
        self.tokens_seen = 0
        self.last_step = 0
        self.start_tokens: int | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any):
        self.started_at = time.monotonic()
        self.start_step = state.global_step
        self.last_step = state.global_step
        self.start_tokens = None

    @property
    def steps_run(self) -> int:
        """Optimizer steps this process ran (after the checkpoint it resumed from, if any)."""
        return self.last_step - self.start_step

    @property
    def tokens_run(self) -> int:
        """Tokens the trainer counted over the steps this process ran (0 when it counts none)."""
        return self.tokens_seen - (self.start_tokens or 0)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any):
        self.last_step = state.global_step
        now = time.monotonic()
        if state.global_step in (1, state.max_steps) or now - self.last_progress_at >= PROGRESS_INTERVAL_S:
            self.last_progress_at = now
            self.events.emit("progress", **self.progress(state, now))
        if _any_process_requested(self.cancel.requested):
            self.cancelled = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **_: Any):
        logs = dict(logs or {})
        self.tokens_seen = int(logs.get("num_input_tokens_seen", logs.get("num_tokens", self.tokens_seen)))
        if self.start_tokens is None and self.tokens_seen:
            # The first count comes after the first logged step: take what came before it as the start
            # only when resuming (a fresh run starts at 0, and its first step's tokens count).
            self.start_tokens = 0 if self.start_step == 0 else self.tokens_seen
        if "train_runtime" in logs or any(key.startswith("eval_") for key in logs):
            return  # the run summary goes into `finished`; eval logs come through on_evaluate
        logs.pop("total_flos", None)
        self.events.emit("metrics", **{"step": state.global_step, "epoch": state.epoch, **logs})

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, metrics=None, **_):
        self.events.emit("eval", **{"step": state.global_step, "epoch": state.epoch, **(metrics or {})})

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any):
        self.last_checkpoint = str(Path(args.output_dir) / f"checkpoint-{state.global_step}")
        self.events.emit("checkpoint", step=state.global_step, path=self.last_checkpoint)
        if self.cancelled and self.raise_on_cancel:
            raise Cancelled(self.last_checkpoint)

    def progress(self, state: TrainerState, now: float) -> dict[str, Any]:
        steps_done = state.global_step - self.start_step
        elapsed = now - self.started_at
        remaining = max(state.max_steps - state.global_step, 0)
        eta = elapsed / steps_done * remaining if steps_done > 0 else None
        tokens = max(state.num_input_tokens_seen or 0, self.tokens_seen)
        return {
            "step": state.global_step,
            "total_steps": state.max_steps,
            "epoch": state.epoch,
            "tokens_seen": tokens,
            "elapsed_s": round(elapsed, 3),
            "eta_s": None if eta is None else round(eta, 1),
        }


def _any_process_requested(requested: bool) -> bool:
    """Agree on the cancel flag across processes, so every rank stops at the same step."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return requested
    import torch

    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    flag = torch.tensor([1.0 if requested else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return _finite(value.item())
    return str(value)
