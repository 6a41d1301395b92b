"""The reward stage's spec (``reward.py`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.engine.spec import TrainingSpec


@dataclass
class RewardSpec(TrainingSpec):
    """Bradley-Terry reward model on chosen/rejected pairs (with the `margin` column when present)."""

    use_margin: bool = field(default=True, metadata={"help": "use the dataset's `margin` column when it has one"})
    center_rewards_coefficient: float | None = field(
        default=None, metadata={"help": "pull mean reward towards 0 (Eisenstein et al. 2023 use 0.01)"}
    )
    # RewardConfig's default; TRL's reward trainer guide: "when training adapters, ... ≈1e-3".
    default_learning_rates = {"full": 1e-4, "adapter": 1e-3}
    required_columns = (("chosen", "rejected"),)
