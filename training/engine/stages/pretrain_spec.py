"""The pretrain stage's spec: continued pretraining on raw text (``pretrain.py`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.engine import data
from training.engine.spec import TrainingSpec, check_columns


@dataclass
class PretrainSpec(TrainingSpec):
    """Continued pretraining: next-token loss on raw domain text, packed into max_length blocks."""

    text_field: str = field(default="text", metadata={"help": "column holding the text (JSONL/Parquet/HF)"})

    def check_datasets(self) -> None:
        for name in ("dataset", "eval_dataset"):
            path = getattr(self, name)
            if path is not None and not data.is_text_source(path):
                check_columns(path, name, ((self.text_field,),))
