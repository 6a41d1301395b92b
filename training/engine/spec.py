"""Typed specs for every engine stage, read from JSON and checked before any model is loaded.

A spec is one JSON object with a ``stage`` key; the other keys are the fields of that stage's
dataclass. ``load_spec`` rejects unknown fields, values of the wrong type or range, dataset files
that lack the stage's columns, and model paths that are not a local model directory, each with a
message that names the field.
"""

from __future__ import annotations

import importlib.util
import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from training.engine import data


class SpecError(ValueError):
    """A spec that cannot run; the message names the field and says what is wrong."""


AdapterMethod = Literal["full", "lora", "qlora", "ia3", "freeze"]
# Methods that train a small PEFT adapter on a frozen base; full and freeze train ordinary weights.
ADAPTER_METHODS = ("lora", "qlora", "ia3")
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"]
DPOLoss = Literal["sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "apo_down"]


@dataclass
class AdapterSpec:
    """How much of the model trains. ``full`` trains every weight; ``freeze`` only the last N layers."""

    method: AdapterMethod = field(default="lora", metadata={"help": "full, lora, qlora (4-bit, CUDA), ia3, freeze"})
    r: int = field(default=16, metadata={"help": "LoRA rank"})
    alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "module names to adapt; default: every linear layer (LoRA), PEFT's per-model set (IA3)"},
    )
    freeze_last_n_layers: int = field(default=2, metadata={"help": "freeze: number of final decoder layers that train"})
    merge: bool = field(default=False, metadata={"help": "save the adapter merged into full weights"})

    def validate(self) -> None:
        _require(self.r >= 1, "adapter.r", "must be >= 1")
        _require(self.alpha >= 1, "adapter.alpha", "must be >= 1")
        _require(0 <= self.dropout < 1, "adapter.dropout", "must be in [0, 1)")
        _require(self.freeze_last_n_layers >= 1, "adapter.freeze_last_n_layers", "must be >= 1")
        _require(
            not (self.merge and self.method in ("full", "freeze")),
            "adapter.merge",
            f"only applies to adapter methods (lora, qlora, ia3), not {self.method!r}",
        )


@dataclass
class ModelSource:
    """A model on local disk: a safetensors directory, a GGUF file inside one, or a PEFT adapter directory."""

    model: str = field(metadata={"help": "local model directory"})
    output_dir: str = field(metadata={"help": "where checkpoints, the final model, metrics.json and spec.json go"})
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file name inside `model`"})
    seed: int = field(default=42, metadata={"help": "seed for weights init, data order and sampling"})

    def validate(self) -> None:
        check_model_dir(self.model, "model", gguf_file=self.gguf_file)
        _require(bool(self.output_dir), "output_dir", "is required")
        # Absolute, so adapters saved from this run name a base model that loads from anywhere.
        self.model = str(Path(self.model).resolve())
        self.output_dir = str(Path(self.output_dir).resolve())


@dataclass
class TrainingSpec(ModelSource):
    """Fields every training stage shares. Defaults follow TRL's where TRL has one."""

    dataset: str = field(default="", metadata={"help": "JSONL, Parquet, HF dataset directory (or .txt for pretrain)"})
    eval_dataset: str | None = field(default=None, metadata={"help": "held-out set; default: split off `dataset`"})
    eval_fraction: float = field(default=0.1, metadata={"help": "share of `dataset` held out when no eval_dataset"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps; -1 runs `epochs` epochs"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training set when max_steps is -1"})
    batch_size: int = field(default=8, metadata={"help": "examples per device per micro-step"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-steps per optimizer step"})
    learning_rate: float | None = field(
        default=None, metadata={"help": "peak learning rate; default per stage and adapter method"}
    )
    lr_scheduler: Scheduler = field(default="linear", metadata={"help": "transformers scheduler name"})
    warmup_steps: float = field(default=0.0, metadata={"help": "warm-up steps, or a fraction of all steps if < 1"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    max_length: int = field(default=1024, metadata={"help": "tokens per example (pretrain: per packed block)"})
    logging_steps: int | None = field(
        default=None, metadata={"help": "optimizer steps between metrics events; default: every 1% of the run"}
    )
    save_steps: int = field(default=500, metadata={"help": "optimizer steps between checkpoints"})
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept (oldest deleted first)"})
    eval_steps: int | None = field(default=None, metadata={"help": "optimizer steps between evals; default: at end"})
    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "recompute activations; default: on with CUDA, off on CPU"}
    )
    resume_from: str | None = field(
        default=None, metadata={"help": "checkpoint directory, or 'latest' for the newest one in output_dir"}
    )
    adapter: AdapterSpec = field(default_factory=AdapterSpec)

    # The peak learning rate when the spec gives none, for full fine-tuning (also freeze: its trained
    # layers are ordinary weights) and for adapters. "full" is TRL 1.12's default for the stage's
    # trainer (SFTConfig: 2e-5). An adapter trains a small fraction of the weights and needs about 10x
    # that: TRL's PEFT guide (docs/source/peft_integration.md, "Learning Rate Considerations") lists
    # SFT at 2e-5 full and 2e-4 with LoRA, "LoRA or other PEFT methods", after Schulman et al., "LoRA
    # Without Regret" (2025). PEFT's own IA3 guide trains at 8e-3: raise it by hand for IA3 if needed.
    default_learning_rates: typing.ClassVar[dict[str, float]] = {"full": 2e-5, "adapter": 2e-4}
    required_columns: typing.ClassVar[tuple[tuple[str, ...], ...]] = ()

    @classmethod
    def default_learning_rate(cls, method: str) -> float:
        """The learning rate this stage trains with when none is given, for an adapter ``method``."""
        return cls.default_learning_rates["adapter" if method in ADAPTER_METHODS else "full"]

    def validate(self) -> None:
        super().validate()
        self.adapter.validate()
        _require(bool(self.dataset), "dataset", "is required")
        _require(0 <= self.eval_fraction < 1, "eval_fraction", "must be in [0, 1)")
        _require(self.max_steps == -1 or self.max_steps >= 1, "max_steps", "must be -1 or >= 1")
        _require(self.epochs > 0, "epochs", "must be > 0")
        for name in ("batch_size", "gradient_accumulation_steps", "max_length", "save_steps"):
            _require(getattr(self, name) >= 1, name, "must be >= 1")
        _require(self.logging_steps is None or self.logging_steps >= 1, "logging_steps", "must be >= 1")
        _require(self.learning_rate is None or self.learning_rate > 0, "learning_rate", "must be > 0")
        _require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        _require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _require(self.max_grad_norm > 0, "max_grad_norm", "must be > 0")
        _require(self.save_total_limit is None or self.save_total_limit >= 1, "save_total_limit", "must be >= 1")
        _require(self.eval_steps is None or self.eval_steps >= 1, "eval_steps", "must be >= 1")
        if self.adapter.method == "qlora":
            _require(_cuda_available(), "adapter.method", "qlora needs a CUDA device; use lora on CPU")
            _require(
                importlib.util.find_spec("bitsandbytes") is not None,
                "adapter.method",
                "qlora needs the bitsandbytes package, which is not installed",
            )
        self.check_datasets()
        if self.resume_from not in (None, "latest"):
            _require(Path(self.resume_from).is_dir(), "resume_from", f"{self.resume_from} is not a directory")
        if self.learning_rate is None:
            self.learning_rate = self.default_learning_rate(self.adapter.method)

    def check_datasets(self) -> None:
        for name in ("dataset", "eval_dataset"):
            path = getattr(self, name)
            if path is not None:
                check_columns(path, name, self.required_columns)


@dataclass
class PretrainSpec(TrainingSpec):
    """Continued pretraining: next-token loss on raw domain text, packed into max_length blocks."""

    text_field: str = field(default="text", metadata={"help": "column holding the text (JSONL/Parquet/HF)"})

    def check_datasets(self) -> None:
        for name in ("dataset", "eval_dataset"):
            path = getattr(self, name)
            if path is not None and not data.is_text_source(path):
                check_columns(path, name, ((self.text_field,),))


@dataclass
class SFTSpec(TrainingSpec):
    """Supervised fine-tuning on prompt/completion or messages rows."""

    completion_only_loss: bool = field(default=True, metadata={"help": "loss on the completion tokens only"})
    packing: bool = field(default=False, metadata={"help": "pack several examples into one max_length row"})
    sources: list[str] | None = field(
        default=None, metadata={"help": "keep rows whose `source` column is one of these (e.g. rewrite, best)"}
    )
    required_columns = (("prompt", "completion"), ("messages",))


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


@dataclass
class DPOSpec(TrainingSpec):
    """Direct Preference Optimization against a frozen reference (the starting model by default)."""

    beta: float = field(default=0.1, metadata={"help": "KL strength (DPO paper: 0.1)"})
    loss_type: DPOLoss = field(default="sigmoid", metadata={"help": "TRL DPO loss"})
    label_smoothing: float = field(default=0.0, metadata={"help": "conservative DPO / robust noise rate"})
    reference_model: str | None = field(default=None, metadata={"help": "local reference model; default: `model`"})
    precompute_ref_log_probs: bool = field(default=False, metadata={"help": "score the reference once, up front"})
    # DPOConfig's default for full fine-tuning. For adapters TRL's PEFT guide gives 10x (DPO at 5e-7
    # full, 5e-6 LoRA), but on the demo model (SmolLM2-135M, LoRA, the demo's 201 preference pairs,
    # 25 steps of 8) that barely trains: held-out loss 0.691 / 0.670 / 0.626 / 0.502 and reward
    # margin 0.006 / 0.055 / 0.165 / 0.538 at 1e-6 / 1e-5 / 3e-5 / 1e-4, held-out token accuracy not
    # hurt at 1e-4. 5e-5 trains visibly in a short round and stays below the rate that moved it most.
    default_learning_rates = {"full": 1e-6, "adapter": 5e-5}
    required_columns = (("chosen", "rejected"),)

    def validate(self) -> None:
        _require(self.beta > 0, "beta", "must be > 0")
        _require(0 <= self.label_smoothing < 0.5, "label_smoothing", "must be in [0, 0.5)")
        if self.reference_model is not None:
            check_model_dir(self.reference_model, "reference_model")
        super().validate()


@dataclass
class PPOSpec(TrainingSpec):
    """PPO (TRL 1.12 experimental) from an SFT policy, scored by a trained reward model."""

    reward_model: str = field(default="", metadata={"help": "local sequence-classification reward model"})
    value_model: str | None = field(default=None, metadata={"help": "value model init; default: reward_model"})
    reference_model: str | None = field(default=None, metadata={"help": "frozen KL reference; default: `model`"})
    kl_coef: float = field(default=0.05, metadata={"help": "KL penalty coefficient (TRL default)"})
    response_length: int = field(default=53, metadata={"help": "new tokens sampled per prompt (TRL default)"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature for rollouts"})
    num_ppo_epochs: int = field(default=4, metadata={"help": "PPO epochs per rollout batch"})
    num_mini_batches: int = field(default=1, metadata={"help": "mini-batches per PPO epoch"})
    missing_eos_penalty: float | None = field(default=None, metadata={"help": "subtracted when no EOS is sampled"})
    # TRL 1.12's PPOConfig default, and 10x it for adapters (TRL's PEFT guide).
    default_learning_rates = {"full": 3e-6, "adapter": 3e-5}
    required_columns = (("prompt",), ("messages",))

    def validate(self) -> None:
        _require(bool(self.reward_model), "reward_model", "is required")
        check_model_dir(self.reward_model, "reward_model")
        for name in ("value_model", "reference_model"):
            if getattr(self, name) is not None:
                check_model_dir(getattr(self, name), name)
        _require(self.kl_coef >= 0, "kl_coef", "must be >= 0")
        _require(self.response_length >= 1, "response_length", "must be >= 1")
        _require(self.temperature > 0, "temperature", "must be > 0")
        _require(self.num_ppo_epochs >= 1, "num_ppo_epochs", "must be >= 1")
        _require(self.num_mini_batches >= 1, "num_mini_batches", "must be >= 1")
        _require(
            self.batch_size * self.gradient_accumulation_steps % self.num_mini_batches == 0,
            "num_mini_batches",
            "must divide batch_size * gradient_accumulation_steps",
        )
        super().validate()


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

    def validate(self) -> None:
        super().validate()
        _require(bool(self.prompts), "prompts", "is required")
        _require(self.progress_offset >= 0, "progress_offset", "must be >= 0")
        _require(
            self.progress_total is None or self.progress_total >= self.progress_offset,
            "progress_total",
            "must be >= progress_offset",
        )
        check_columns(self.prompts, "prompts", (("prompt",),))
        _require(self.num_candidates >= 1, "num_candidates", "must be >= 1")
        _require(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        _require(self.batch_size >= 1, "batch_size", "must be >= 1")
        for name in ("temperature", "top_p"):
            values = self.per_candidate(name)
            _require(len(values) == self.num_candidates, name, "needs one value per candidate (num_candidates)")
            _require(all(v > 0 for v in values), name, "must be > 0")
        _require(all(v <= 1 for v in self.per_candidate("top_p")), "top_p", "must be <= 1")

    def per_candidate(self, name: str) -> list[float]:
        value = getattr(self, name)
        return list(value) if isinstance(value, list) else [value] * self.num_candidates


@dataclass
class EvaluateSpec(ModelSource):
    """Held-out evaluation of a reward model (pairwise accuracy) or a policy (reward, win rate, perplexity)."""

    kind: Literal["reward", "policy"] = field(default="policy", metadata={"help": "what `model` is"})
    preferences: str | None = field(
        default=None, metadata={"help": "prompt/chosen/rejected pairs (reward: accuracy; policy: log-prob margin)"}
    )
    prompts: str | None = field(default=None, metadata={"help": "policy: held-out prompts to answer"})
    reward_model: str | None = field(default=None, metadata={"help": "policy: scores the answers"})
    reference_model: str | None = field(
        default=None, metadata={"help": "policy: the model before training (win rate and perplexity baseline)"}
    )
    perplexity_texts: str | None = field(default=None, metadata={"help": "policy: reference texts (`text` column)"})
    max_new_tokens: int = field(default=128, metadata={"help": "policy: tokens per answer (greedy)"})
    max_length: int = field(default=1024, metadata={"help": "tokens per scored sequence"})
    batch_size: int = field(default=8, metadata={"help": "rows per forward pass"})

    def validate(self) -> None:
        super().validate()
        _require(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        _require(self.max_length >= 1, "max_length", "must be >= 1")
        _require(self.batch_size >= 1, "batch_size", "must be >= 1")
        if self.kind == "reward":
            _require(self.preferences is not None, "preferences", "is required when kind is 'reward'")
            check_columns(self.preferences, "preferences", (("chosen", "rejected"),))
            return
        _require(
            any(source is not None for source in (self.prompts, self.perplexity_texts, self.preferences)),
            "prompts",
            "a policy evaluation needs `prompts` (with `reward_model`), `preferences` or `perplexity_texts`",
        )
        if self.preferences is not None:
            check_columns(self.preferences, "preferences", (("prompt", "chosen", "rejected"),))
        if self.prompts is not None:
            check_columns(self.prompts, "prompts", (("prompt",),))
            _require(self.reward_model is not None, "reward_model", "is required to score answers to `prompts`")
        if self.perplexity_texts is not None and not data.is_text_source(self.perplexity_texts):
            check_columns(self.perplexity_texts, "perplexity_texts", (("text",),))
        for name in ("reward_model", "reference_model"):
            if getattr(self, name) is not None:
                check_model_dir(getattr(self, name), name)


SPEC_CLASSES: dict[str, type[ModelSource]] = {
    "pretrain": PretrainSpec,
    "sft": SFTSpec,
    "reward": RewardSpec,
    "dpo": DPOSpec,
    "ppo": PPOSpec,
    "generate": GenerateSpec,
    "evaluate": EvaluateSpec,
}


def load_spec(source: str | Path | dict[str, Any]) -> ModelSource:
    """Read a spec from a JSON file or a dict, check it, and return the stage's dataclass."""
    if isinstance(source, dict):
        raw = dict(source)
    else:
        try:
            raw = json.loads(Path(source).read_text())
        except FileNotFoundError as error:
            raise SpecError(f"spec file {source} does not exist") from error
        except json.JSONDecodeError as error:
            raise SpecError(f"spec file {source} is not valid JSON: {error}") from error
    if not isinstance(raw, dict):
        raise SpecError("a spec is a JSON object")
    stage = raw.pop("stage", None)
    if stage not in SPEC_CLASSES:
        raise SpecError(f"stage: must be one of {', '.join(SPEC_CLASSES)}, got {stage!r}")
    spec = _build(SPEC_CLASSES[stage], raw, prefix="")
    spec.validate()
    return spec


def spec_to_dict(spec: ModelSource) -> dict[str, Any]:
    """The spec as JSON-ready data, with its ``stage`` key, as written to ``spec.json``."""
    return {"stage": stage_of(spec), **asdict(spec)}


def stage_of(spec: ModelSource) -> str:
    return next(name for name, cls in SPEC_CLASSES.items() if type(spec) is cls)


# --- checks ------------------------------------------------------------------------------------


def check_model_dir(path: str, name: str, *, gguf_file: str | None = None) -> None:
    """A local directory with config.json + safetensors weights, a PEFT adapter, or the named GGUF file."""
    directory = Path(path)
    _require(directory.is_dir(), name, f"{path} is not a local directory (models load from disk only)")
    if gguf_file is not None:
        _require((directory / gguf_file).is_file(), "gguf_file", f"{gguf_file} is not a file in {path}")
        return
    if (directory / "adapter_config.json").is_file():
        _require(
            any(directory.glob("adapter_model*.safetensors")),
            name,
            f"{path} has adapter_config.json but no adapter_model.safetensors",
        )
        return
    _require((directory / "config.json").is_file(), name, f"{path} has no config.json (not a model directory)")
    _require(
        any(directory.glob("*.safetensors")),
        name,
        f"{path} has no .safetensors weights (only safetensors or GGUF models are loaded)",
    )


def check_columns(path: str, name: str, accepted: tuple[tuple[str, ...], ...]) -> None:
    """The dataset at ``path`` exists and has every column of at least one of the ``accepted`` sets."""
    try:
        columns = data.dataset_columns(path)
    except data.DataError as error:
        raise SpecError(f"{name}: {error}") from error
    if not accepted or any(set(option) <= columns for option in accepted):
        return
    wanted = " or ".join("{" + ", ".join(option) + "}" for option in accepted)
    raise SpecError(f"{name}: {path} needs columns {wanted}; it has {sorted(columns)}")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _require(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise SpecError(f"{name}: {message}")


# --- JSON -> dataclass -------------------------------------------------------------------------


def _build(cls: type, raw: dict[str, Any], *, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.init}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SpecError(
            f"{prefix}{unknown[0]}: unknown field for {cls.__name__}; known fields: {', '.join(sorted(known))}"
        )
    values = {}
    for name, spec_field in known.items():
        if name not in raw:
            if spec_field.default is MISSING and spec_field.default_factory is MISSING:
                raise SpecError(f"{prefix}{name}: is required")
            continue
        values[name] = _convert(raw[name], hints[name], f"{prefix}{name}")
    return cls(**values)


def _convert(value: Any, annotation: Any, name: str) -> Any:
    """Check ``value`` against a field annotation (the few shapes specs use) and return it."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(value, option, name)
            except SpecError as error:
                errors.append(str(error).split(": ", 1)[1])
        raise SpecError(f"{name}: " + "; or ".join(errors))
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise SpecError(f"{name}: must be one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if origin is list:
        (item,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise SpecError(f"{name}: must be a list, got {type(value).__name__}")
        return [_convert(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(annotation, type) and hasattr(annotation, "__dataclass_fields__"):
        if not isinstance(value, dict):
            raise SpecError(f"{name}: must be an object, got {type(value).__name__}")
        return _build(annotation, value, prefix=f"{name}.")
    if annotation is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{name}: must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{name}: must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"{name}: must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise SpecError(f"{name}: must be a string, got {value!r}")
        return value
    raise TypeError(f"spec field {name} has an unsupported annotation {annotation!r}")
