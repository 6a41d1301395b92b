"""Bottleneck adapters (Houlsby et al. 2019, Pfeiffer et al. 2021): small networks inside each layer.

Each adapter is a down-projection to ``hidden_size // reduction_factor`` units, a nonlinearity, and an
up-projection back, added to its input (a residual). The up-projection starts at zero, so a model
with fresh adapters computes exactly what the base did. Placement:

- ``pfeiffer``: one adapter on the output of each layer's feed-forward block;
- ``houlsby``: one on the output of the attention block and one on the feed-forward block's.

PEFT has no bottleneck adapter, and AdapterHub's ``adapters`` package pins transformers 4.x, so
they live here: each adapter is a submodule of its decoder layer (``bottleneck_attention``,
``bottleneck_feedforward``, so the trainers' optimizers, checkpoints and parameter counts see
them) and a forward hook adds it to the sublayer's output, leaving the base's modules and weight
names as they were. The model stays an ordinary ``PreTrainedModel`` that TRL's trainers take.

A saved bottleneck adapter is a directory like a PEFT adapter's::

    bottleneck_config.json        placement, reduction factor, nonlinearity, base_model_name_or_path
    bottleneck_model.safetensors  the adapters' weights (and a reward model's trained score head)
    tokenizer files

A model that carries adapters and is saved whole (a later full fine-tuning, a merged LoRA on top)
names them in its config.json (``bottleneck_adapter``) and keeps their weights among its own;
``training.engine.models`` attaches them again on load.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from transformers import PreTrainedModel

CONFIG_FILE = "bottleneck_config.json"
WEIGHTS_FILE = "bottleneck_model.safetensors"
# The config.json attribute that marks a whole model carrying adapters.
CONFIG_ATTRIBUTE = "bottleneck_adapter"
# Submodule names on each decoder layer; a parameter whose name holds one is an adapter weight.
ATTENTION_ADAPTER = "bottleneck_attention"
FEEDFORWARD_ADAPTER = "bottleneck_feedforward"
# A reward model's score head is new at the reward stage: it trains and is saved with the adapters.
HEAD_NAMES = ("score", "classifier")
NONLINEARITIES = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class BottleneckConfig:
    placement: str  # "pfeiffer" or "houlsby"
    reduction_factor: int  # hidden_size / bottleneck units
    non_linearity: str = "relu"
    base_model_name_or_path: str = ""


class Bottleneck(nn.Module):
    """x -> x + up(act(down(x))), with ``up`` zero at first (the identity)."""

    def __init__(self, hidden_size: int, units: int, non_linearity: str) -> None:
        super().__init__()
        self.down = nn.Linear(hidden_size, units)
        self.act = NONLINEARITIES[non_linearity]()
        self.up = nn.Linear(units, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.act(self.down(hidden)))

    def after(self, _module: nn.Module, _inputs: Any, output: Any) -> Any:
        """The forward hook on the sublayer it follows. A bound method, so that a deep copy of the
        model (a frozen reference) calls its own copy of the adapter, not this one."""
        # Attention blocks return (hidden states, attention weights, ...); feed-forward blocks a tensor.
        if isinstance(output, tuple):
            return (self(output[0]), *output[1:])
        return self(output)


def attach(model: PreTrainedModel, config: BottleneckConfig) -> None:
    """Insert adapters into every decoder layer of ``model`` (in place) and note them in its config."""
    from training.engine.adapters import decoder_layers

    hidden_size = model.config.hidden_size
    units = max(1, hidden_size // config.reduction_factor)
    reference = next(model.parameters())
    for layer in decoder_layers(model):
        sublayers = {FEEDFORWARD_ADAPTER: _sublayer(layer, ("mlp", "feed_forward", "ffn"))}
        if config.placement == "houlsby":
            sublayers[ATTENTION_ADAPTER] = _sublayer(layer, ("self_attn", "attn", "attention", "self_attention"))
        for name, sublayer in sublayers.items():
            if hasattr(layer, name):
                raise ValueError(f"{type(model).__name__} already has bottleneck adapters")
            adapter = Bottleneck(hidden_size, units, config.non_linearity)
            layer.add_module(name, adapter.to(device=reference.device, dtype=reference.dtype))
            sublayer.register_forward_hook(getattr(layer, name).after)
    setattr(model.config, CONFIG_ATTRIBUTE, {**asdict(config), "base_model_name_or_path": ""})


def _sublayer(layer: nn.Module, names: tuple[str, ...]) -> nn.Module:
    for name in names:
        if isinstance(getattr(layer, name, None), nn.Module):
            return getattr(layer, name)
    raise ValueError(f"{type(layer).__name__} has none of the sublayers {', '.join(names)} to put an adapter after")


def is_adapter_parameter(name: str) -> bool:
    return f".{ATTENTION_ADAPTER}." in name or f".{FEEDFORWARD_ADAPTER}." in name


def has_adapters(model: nn.Module) -> bool:
    return any(is_adapter_parameter(name) for name, _ in model.named_parameters())


def train_only_adapters(model: PreTrainedModel) -> None:
    """Freeze the base; the adapters (and a classification head, new at the reward stage) train."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(is_adapter_parameter(name) or _is_head(name))


def _is_head(name: str) -> bool:
    return name.split(".")[0] in HEAD_NAMES


def attached_config(model: PreTrainedModel) -> BottleneckConfig | None:
    """The adapters ``model`` carries (from ``attach``), or None."""
    marked = getattr(model.config, CONFIG_ATTRIBUTE, None)
    return BottleneckConfig(**marked) if marked and has_adapters(model) else None


def save(model: PreTrainedModel, directory: Path, *, base_model: str) -> None:
    """Write the adapters' weights (and a head's) and ``bottleneck_config.json`` naming ``base_model``.

    ``base_model`` is the model the stage loaded. When it carried adapters already (an earlier
    stage's, trained on in this one), loading the new directory loads it with them and puts the new
    weights in their place (``training.engine.models``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    marked = getattr(model.config, CONFIG_ATTRIBUTE, None)
    if not marked:
        raise ValueError("the model carries no bottleneck adapters")
    weights = {
        name: parameter.detach().contiguous().cpu()
        for name, parameter in model.named_parameters()
        if is_adapter_parameter(name) or _is_head(name)
    }
    save_file(weights, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    config = {**marked, "base_model_name_or_path": base_model}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")


def read_config(directory: str | Path) -> BottleneckConfig | None:
    """The adapter config of a saved bottleneck directory, or None when ``directory`` is not one."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        config = BottleneckConfig(**raw)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as error:
        raise ValueError(f"{path} is not a bottleneck adapter config: {error}") from None
    check_config(config, where=str(path))
    return config


def check_config(config: BottleneckConfig, *, where: str) -> None:
    if config.placement not in ("pfeiffer", "houlsby"):
        raise ValueError(f"{where}: placement must be pfeiffer or houlsby, not {config.placement!r}")
    if not isinstance(config.reduction_factor, int) or config.reduction_factor < 1:
        raise ValueError(f"{where}: reduction_factor must be an integer >= 1")
    if config.non_linearity not in NONLINEARITIES:
        raise ValueError(f"{where}: non_linearity must be one of {', '.join(NONLINEARITIES)}")


def load_weights(model: PreTrainedModel, files: list[Path]) -> None:
    """Copy the adapter (and head) weights stored in ``files`` into ``model``, which has its adapters attached.

    Every adapter parameter of the model must be found: a partial adapter would silently compute
    something else than what was trained.
    """
    parameters = dict(model.named_parameters())
    wanted = {name for name in parameters if is_adapter_parameter(name)}
    found: set[str] = set()
    with torch.no_grad():
        for file in files:
            with safe_open(str(file), framework="pt") as weights:
                for name in weights.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                    if name in parameters and (is_adapter_parameter(name) or _is_head(name)):
                        parameters[name].copy_(weights.get_tensor(name))
                        found.add(name)
    missing = sorted(wanted - found)
    if missing:
        raise ValueError(f"bottleneck adapter weights missing: {', '.join(missing[:3])}")
