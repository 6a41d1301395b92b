"""The KTO stage's spec (``kto.py`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from training.engine.spec import TrainingSpec, check_model_dir, require

KTOLoss = Literal["kto", "apo_zero_unpaired"]


@dataclass
class KTOSpec(TrainingSpec):
    """Kahneman-Tversky Optimization: unpaired completions labelled desirable or not, against a frozen reference."""

    beta: float = field(default=0.1, metadata={"help": "KL strength (KTO paper and TRL: 0.1)"})
    loss_type: KTOLoss = field(default="kto", metadata={"help": "TRL KTO loss"})
    desirable_weight: float = field(
        default=1.0, metadata={"help": "weight of desirable examples' loss; raise it when they are outnumbered"}
    )
    undesirable_weight: float = field(default=1.0, metadata={"help": "weight of undesirable examples' loss"})
    reference_model: str | None = field(default=None, metadata={"help": "local reference model; default: `model`"})
    precompute_ref_log_probs: bool = field(default=False, metadata={"help": "score the reference once, up front"})
    # KTOConfig's default for full fine-tuning (1e-6); for adapters DPO's (same beta-scaled log-ratio
    # objective, measured on the demo model in dpo_spec.py), not measured for KTO separately.
    default_learning_rates = {"full": 1e-6, "adapter": 5e-5}
    required_columns = (("prompt", "completion", "label"),)

    def check_fields(self) -> None:
        require(self.beta > 0, "beta", "must be > 0")
        require(self.desirable_weight > 0, "desirable_weight", "must be > 0")
        require(self.undesirable_weight > 0, "undesirable_weight", "must be > 0")
        # KTO estimates its KL term from the other completions of the same micro-batch.
        require(
            self.loss_type != "kto" or self.batch_size >= 2,
            "batch_size",
            "must be >= 2 for KTO (its KL estimate pairs each prompt with another example's completion)",
        )
        super().check_fields()

    def check_paths(self) -> None:
        if self.reference_model is not None:
            check_model_dir(self.reference_model, "reference_model")
        super().check_paths()
