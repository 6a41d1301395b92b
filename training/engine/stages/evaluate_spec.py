"""The evaluate stage's spec (``evaluate.py`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from training.engine import data
from training.engine.benchmarks import BENCHMARK_NAMES, DEFAULT_LIMIT, TRUTHFULQA_NAMES
from training.engine.spec import ModelSource, check_columns, check_model_dir, require

# For people: the pages and the verdict name the benchmarks so.
BENCHMARK_LABELS = {
    "arc_easy": "ARC-Easy",
    "arc_challenge": "ARC-Challenge",
    "hellaswag": "HellaSwag",
    "mmlu": "MMLU",
    "piqa": "PIQA",
    "truthfulqa_mc1": "TruthfulQA MC1",
    "truthfulqa_mc2": "TruthfulQA MC2",
}


@dataclass
class EvaluateSpec(ModelSource):
    """Held-out evaluation of a reward model, or of a policy against the model it was trained from.

    Every figure is computed over the whole held-out set, with a 95% interval; a policy's figures
    are also taken on ``reference_model``, and each change gets a verdict (better, worse, no clear change).
    """

    kind: Literal["reward", "policy"] = field(default="policy", metadata={"help": "what `model` is"})
    preferences: str | None = field(
        default=None,
        metadata={"help": "prompt/chosen/rejected pairs (reward: accuracy, by `agreement` when given; policy: margin)"},
    )
    prompts: str | None = field(
        default=None,
        metadata={"help": "policy: held-out prompts to answer (lengths, KL; win rate with `reward_model`)"},
    )
    reward_model: str | None = field(
        default=None, metadata={"help": "policy: scores the answers (and its accuracy on `preferences` is checked)"}
    )
    reference_model: str | None = field(
        default=None, metadata={"help": "policy: the model before training (every figure's baseline)"}
    )
    reference_gguf_file: str | None = field(default=None, metadata={"help": "GGUF file name inside `reference_model`"})
    perplexity_texts: str | None = field(
        default=None, metadata={"help": "policy: reference texts for forgetting (.txt or a `text` column)"}
    )
    benchmarks: list[str] = field(
        default_factory=list, metadata={"help": f"policy: lm-evaluation-harness tasks, of {', '.join(BENCHMARK_NAMES)}"}
    )
    benchmark_data: str | None = field(default=None, metadata={"help": "directory of the benchmarks' data files"})
    truthfulqa: str | None = field(default=None, metadata={"help": "TruthfulQA multiple-choice file (its HF format)"})
    benchmark_limit: int | None = field(
        default=DEFAULT_LIMIT, metadata={"help": "items per benchmark, drawn with a fixed seed (None: all)"}
    )
    max_new_tokens: int = field(default=128, metadata={"help": "policy: tokens per sampled answer"})
    temperature: float = field(default=1.0, metadata={"help": "policy: sampling temperature of the answers"})
    max_length: int = field(default=1024, metadata={"help": "tokens per scored sequence"})
    batch_size: int = field(default=8, metadata={"help": "rows per forward pass"})
    examples: int = field(default=20, metadata={"help": "answers kept in the report, per model"})

    def check_fields(self) -> None:
        super().check_fields()
        require(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        require(self.temperature > 0, "temperature", "must be > 0")
        require(self.max_length >= 1, "max_length", "must be >= 1")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")
        require(self.examples >= 0, "examples", "must be >= 0")
        require(self.benchmark_limit is None or self.benchmark_limit >= 1, "benchmark_limit", "must be >= 1")
        unknown = [name for name in self.benchmarks if name not in BENCHMARK_NAMES]
        require(not unknown, "benchmarks", f"unknown benchmark {unknown[0] if unknown else ''!r}")
        if self.kind == "reward":
            require(self.preferences is not None, "preferences", "is required when kind is 'reward'")
            return
        require(
            any(source is not None for source in (self.prompts, self.perplexity_texts, self.preferences))
            or bool(self.benchmarks),
            "prompts",
            "a policy evaluation needs `prompts`, `preferences`, `perplexity_texts` or `benchmarks`",
        )
        require(
            not self.benchmarks or self.benchmark_data is not None or set(self.benchmarks) <= TRUTHFULQA_NAMES,
            "benchmark_data",
            "is required to run benchmarks (make benchmark-data fetches it)",
        )
        require(
            not (set(self.benchmarks) & TRUTHFULQA_NAMES) or self.truthfulqa is not None,
            "truthfulqa",
            "is required to run TruthfulQA: no package ships its data; give its multiple-choice file",
        )

    def check_paths(self) -> None:
        super().check_paths()
        if self.preferences is not None:
            check_columns(self.preferences, "preferences", (("prompt", "chosen", "rejected"),))
        if self.prompts is not None:
            check_columns(self.prompts, "prompts", (("prompt",),))
        if self.perplexity_texts is not None and not data.is_text_source(self.perplexity_texts):
            check_columns(self.perplexity_texts, "perplexity_texts", (("text",),))
        if self.reward_model is not None:
            check_model_dir(self.reward_model, "reward_model")
        if self.reference_model is not None:
            check_model_dir(self.reference_model, "reference_model", gguf_file=self.reference_gguf_file)
