"""The generate stage's spec (``generate.py`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.engine.spec import ModelSource, check_columns, require


@dataclass
class GenerateSpec(ModelSource):
    """K sampled candidates per prompt, written as a labeling import file (DESIGN.md)."""

    prompts: str = field(default="", metadata={"help": "JSONL/Parquet/HF rows with a `prompt` (and optional `id`)"})
    num_candidates: int = field(default=4, metadata={"help": "K responses per prompt"})
    temperature: float | list[float] = field(default=1.0, metadata={"help": "one value, or one per candidate"})
    top_p: float | list[float] = field(default=1.0, metadata={"help": "one value, or one per candidate"})
    max_new_tokens: int = field(default=256, metadata={"help": "tokens sampled per response"})
    batch_size: int = field(default=8, metadata={"help": "prompts per generate call"})
    model_name: str | None = field(default=None, metadata={"help": "`model` value written per response"})
    text_prompts_as_chat: bool | None = field(
        default=None,
        metadata={"help": "ask text prompts as a user message; default: when the model has its own chat template"},
    )
    # A job that runs several models over the same prompts reports one progress for all of them.
    progress_offset: int = field(
        default=0, metadata={"help": "prompts answered before this run (by earlier models); progress counts on"}
    )
    progress_total: int | None = field(
        default=None, metadata={"help": "prompts to answer in the whole job; default: this run's prompts"}
    )

    def check_fields(self) -> None:
        super().check_fields()
        require(bool(self.prompts), "prompts", "is required")
        require(self.progress_offset >= 0, "progress_offset", "must be >= 0")
        require(
            self.progress_total is None or self.progress_total >= self.progress_offset,
            "progress_total",
            "must be >= progress_offset",
        )
        require(self.num_candidates >= 1, "num_candidates", "must be >= 1")
        require(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")
        for name in ("temperature", "top_p"):
            values = self.per_candidate(name)
            require(len(values) == self.num_candidates, name, "needs one value per candidate (num_candidates)")
            require(all(v > 0 for v in values), name, "must be > 0")
        require(all(v <= 1 for v in self.per_candidate("top_p")), "top_p", "must be <= 1")

    def check_paths(self) -> None:
        super().check_paths()
        check_columns(self.prompts, "prompts", (("prompt",),))

    def per_candidate(self, name: str) -> list[float]:
        value = getattr(self, name)
        return list(value) if isinstance(value, list) else [value] * self.num_candidates
