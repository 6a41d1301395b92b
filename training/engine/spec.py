"""What every engine spec shares: the base dataclasses, their checks, and JSON -> dataclass.

A spec is one JSON object with a ``stage`` key; the other keys are the fields of that stage's
dataclass, which lives next to the stage's module (``stages/<stage>_spec.py``); the table of stages
is ``training.engine.stages.STAGES``. Checks come in two kinds:

- ``check_fields``: types, ranges and combinations of the values. No I/O, so the web app runs them
  when a round is launched, before the models that later stages train exist.
- ``check_paths``: model directories, dataset files and their columns, the device. Only the engine
  runs them, when the stage starts.

Either raises ``SpecError`` with a message that names the field.
"""

from __future__ import annotations

import importlib.util
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from training.engine import data


class SpecError(ValueError):
    """A spec that cannot run; the message names the field and says what is wrong."""


AdapterMethod = Literal["full", "lora", "qlora", "ia3", "bottleneck", "freeze"]
# Methods that train a small adapter on a frozen base (PEFT's, or the engine's bottleneck adapter);
# full and freeze train ordinary weights.
ADAPTER_METHODS = ("lora", "qlora", "ia3", "bottleneck")
# Adapters that can be merged into the base's weights (a bottleneck adapter is nonlinear: it cannot).
MERGEABLE_METHODS = ("lora", "qlora", "ia3")
BottleneckPlacement = Literal["pfeiffer", "houlsby"]
BottleneckNonLinearity = Literal["relu", "gelu", "silu", "tanh"]
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"]


@dataclass
class AdapterSpec:
    """How much of the model trains. ``full`` trains every weight; ``freeze`` only the last N layers;
    ``bottleneck`` small networks inside each layer (``training.engine.bottleneck``)."""

    method: AdapterMethod = field(
        default="lora", metadata={"help": "full, lora, qlora (4-bit, CUDA), ia3, bottleneck, freeze"}
    )
    r: int = field(default=16, metadata={"help": "LoRA rank"})
    alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "module names to adapt; default: every linear layer (LoRA), PEFT's per-model set (IA3)"},
    )
    freeze_last_n_layers: int = field(default=2, metadata={"help": "freeze: number of final decoder layers that train"})
    merge: bool = field(default=False, metadata={"help": "save the adapter merged into full weights"})
    # AdapterHub's defaults for its sequential bottleneck configs (SeqBnConfig, "pfeiffer"): 16 and ReLU.
    reduction_factor: int = field(
        default=16, metadata={"help": "bottleneck: hidden size / bottleneck units (16: 576 -> 36 on SmolLM2-135M)"}
    )
    placement: BottleneckPlacement = field(
        default="pfeiffer",
        metadata={"help": "bottleneck: pfeiffer (after each feed-forward block) or houlsby (after attention too)"},
    )
    non_linearity: BottleneckNonLinearity = field(default="relu", metadata={"help": "bottleneck: activation"})

    def check_fields(self) -> None:
        require(self.r >= 1, "adapter.r", "must be >= 1")
        require(self.alpha >= 1, "adapter.alpha", "must be >= 1")
        require(0 <= self.dropout < 1, "adapter.dropout", "must be in [0, 1)")
        require(self.freeze_last_n_layers >= 1, "adapter.freeze_last_n_layers", "must be >= 1")
        require(self.reduction_factor >= 1, "adapter.reduction_factor", "must be >= 1")
        require(
            not self.merge or self.method in MERGEABLE_METHODS,
            "adapter.merge",
            f"only applies to adapter methods that merge into the weights ({', '.join(MERGEABLE_METHODS)}), "
            f"not {self.method!r}",
        )


@dataclass
class ModelSource:
    """A model on local disk: a safetensors directory, a GGUF file inside one, or a PEFT adapter directory."""

    model: str = field(metadata={"help": "local model directory"})
    output_dir: str = field(metadata={"help": "where checkpoints, the final model, metrics.json and spec.json go"})
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file name inside `model`"})
    seed: int = field(default=42, metadata={"help": "seed for weights init, data order and sampling"})

    def check_fields(self) -> None:
        require(bool(self.model), "model", "is required")
        require(bool(self.output_dir), "output_dir", "is required")

    def check_paths(self) -> None:
        check_model_dir(self.model, "model", gguf_file=self.gguf_file)
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

    def check_fields(self) -> None:
        super().check_fields()
        self.adapter.check_fields()
        require(bool(self.dataset), "dataset", "is required")
        require(0 <= self.eval_fraction < 1, "eval_fraction", "must be in [0, 1)")
        require(self.max_steps == -1 or self.max_steps >= 1, "max_steps", "must be -1 or >= 1")
        require(self.epochs > 0, "epochs", "must be > 0")
        for name in ("batch_size", "gradient_accumulation_steps", "max_length", "save_steps"):
            require(getattr(self, name) >= 1, name, "must be >= 1")
        require(self.logging_steps is None or self.logging_steps >= 1, "logging_steps", "must be >= 1")
        require(self.learning_rate is None or self.learning_rate > 0, "learning_rate", "must be > 0")
        require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        require(self.max_grad_norm > 0, "max_grad_norm", "must be > 0")
        require(self.save_total_limit is None or self.save_total_limit >= 1, "save_total_limit", "must be >= 1")
        require(self.eval_steps is None or self.eval_steps >= 1, "eval_steps", "must be >= 1")
        if self.learning_rate is None:
            self.learning_rate = self.default_learning_rate(self.adapter.method)

    def check_paths(self) -> None:
        super().check_paths()
        if self.adapter.method == "qlora":
            # The device is the engine's: a web host without CUDA may launch a round for a GPU worker.
            require(_cuda_available(), "adapter.method", "qlora needs a CUDA device; use lora on CPU")
            require(
                importlib.util.find_spec("bitsandbytes") is not None,
                "adapter.method",
                "qlora needs the bitsandbytes package, which is not installed",
            )
        self.check_datasets()
        if self.resume_from not in (None, "latest"):
            require(Path(self.resume_from).is_dir(), "resume_from", f"{self.resume_from} is not a directory")

    def check_datasets(self) -> None:
        for name in ("dataset", "eval_dataset"):
            path = getattr(self, name)
            if path is not None:
                check_columns(path, name, self.required_columns)


# --- checks ------------------------------------------------------------------------------------


def check_model_dir(path: str, name: str, *, gguf_file: str | None = None) -> None:
    """A local directory with config.json + safetensors weights, a PEFT or bottleneck adapter, or the GGUF file."""
    directory = Path(path)
    require(directory.is_dir(), name, f"{path} is not a local directory (models load from disk only)")
    if gguf_file is not None:
        require((directory / gguf_file).is_file(), "gguf_file", f"{gguf_file} is not a file in {path}")
        return
    if (directory / "adapter_config.json").is_file():
        require(
            any(directory.glob("adapter_model*.safetensors")),
            name,
            f"{path} has adapter_config.json but no adapter_model.safetensors",
        )
        return
    if (directory / "bottleneck_config.json").is_file():
        require(
            (directory / "bottleneck_model.safetensors").is_file(),
            name,
            f"{path} has bottleneck_config.json but no bottleneck_model.safetensors",
        )
        return
    require((directory / "config.json").is_file(), name, f"{path} has no config.json (not a model directory)")
    require(
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


def require(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise SpecError(f"{name}: {message}")


# --- JSON -> dataclass -------------------------------------------------------------------------


def spec_from_dict(cls: type[ModelSource], raw: dict[str, Any]) -> ModelSource:
    """``raw`` (without ``stage``) as a ``cls``, its values checked against the field types; no checks run."""
    return _build(cls, raw, prefix="")


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
