"""RLOO: TRL RLOOTrainer on a snapshot's prompts, scored by a trained reward model (``online.py``)."""

from __future__ import annotations

from typing import Any

from trl import RLOOConfig, RLOOTrainer

from training.engine.events import CancelFlag, EventStream
from training.engine.stages.online import run_online
from training.engine.stages.rloo_spec import RLOOSpec


def run(spec: RLOOSpec, events: EventStream, cancel: CancelFlag) -> dict[str, Any]:
    return run_online(RLOOTrainer, RLOOConfig, spec, events, cancel)
