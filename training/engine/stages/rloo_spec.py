"""The RLOO stage's spec (``rloo.py`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.engine.stages.online_spec import OnlineRLSpec


@dataclass
class RLOOSpec(OnlineRLSpec):
    """REINFORCE Leave-One-Out (Ahmadian et al. 2024): each completion's baseline is the mean reward of
    the other completions of its prompt. Scored by a trained reward model."""

    beta: float = field(default=0.05, metadata={"help": "KL penalty on the reward (TRL default); 0: no reference"})
