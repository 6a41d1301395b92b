"""GRPO: TRL GRPOTrainer on a snapshot's prompts, scored by a trained reward model (``online.py``)."""

from __future__ import annotations

from typing import Any

from trl import GRPOConfig, GRPOTrainer

from training.engine.events import CancelFlag, EventStream
from training.engine.stages.grpo_spec import GRPOSpec
from training.engine.stages.online import run_online


def run(spec: GRPOSpec, events: EventStream, cancel: CancelFlag) -> dict[str, Any]:
    return run_online(GRPOTrainer, GRPOConfig, spec, events, cancel, epsilon=spec.epsilon)
