"""The SFT stage's spec (``sft.py`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.engine.spec import TrainingSpec


@dataclass
class SFTSpec(TrainingSpec):
    """Supervised fine-tuning on prompt/completion or messages rows."""

    completion_only_loss: bool = field(default=True, metadata={"help": "loss on the completion tokens only"})
    packing: bool = field(default=False, metadata={"help": "pack several examples into one max_length row"})
    sources: list[str] | None = field(
        default=None, metadata={"help": "keep rows whose `source` column is one of these (e.g. rewrite, best)"}
    )
    required_columns = (("prompt", "completion"), ("messages",))
