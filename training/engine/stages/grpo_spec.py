"""The GRPO stage's spec (``grpo.py`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.engine.spec import require
from training.engine.stages.online_spec import OnlineRLSpec


@dataclass
class GRPOSpec(OnlineRLSpec):
    """Group Relative Policy Optimization (Shao et al. 2024): advantages are rewards standardized within
    each prompt's group of completions, with PPO's clipped objective. Scored by a trained reward model."""

    beta: float = field(
        default=0.0, metadata={"help": "KL penalty in the loss (TRL default 0: no reference model is kept)"}
    )
    epsilon: float = field(default=0.2, metadata={"help": "clipping range of the policy ratio (TRL default)"})

    def check_fields(self) -> None:
        require(0 < self.epsilon < 1, "epsilon", "must be in (0, 1)")
        super().check_fields()
