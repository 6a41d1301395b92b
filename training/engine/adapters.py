"""What trains: every weight, a PEFT adapter (LoRA, QLoRA, IA3), a bottleneck adapter, or only the last N layers."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from transformers import PreTrainedModel

from training.engine import bottleneck
from training.engine.spec import AdapterSpec


@dataclass(frozen=True)
class ParameterCounts:
    trainable: int
    total: int

    def as_event_fields(self) -> dict[str, int | float]:
        return {
            "trainable_parameters": self.trainable,
            "total_parameters": self.total,
            "trainable_percent": round(100 * self.trainable / max(self.total, 1), 4),
        }


def peft_config(adapter: AdapterSpec, *, task_type: str):
    """The PEFT config for ``adapter``, or None for ``full`` and ``freeze``. task_type: CAUSAL_LM or SEQ_CLS."""
    from peft import IA3Config, LoraConfig

    if adapter.method in ("lora", "qlora"):
        return LoraConfig(
            r=adapter.r,
            lora_alpha=adapter.alpha,
            lora_dropout=adapter.dropout,
            target_modules=adapter.target_modules or "all-linear",
            task_type=task_type,
        )
    if adapter.method == "ia3":
        if adapter.target_modules is None:
            return IA3Config(task_type=task_type)
        # IA3 scales feed-forward inputs rather than outputs; treat the MLP projections as feed-forward.
        feedforward = [name for name in adapter.target_modules if "mlp" in name or name.endswith(("down_proj", "fc2"))]
        return IA3Config(target_modules=adapter.target_modules, feedforward_modules=feedforward, task_type=task_type)
    return None


def apply_adapter(model: PreTrainedModel, adapter: AdapterSpec, *, task_type: str) -> nn.Module:
    """Wrap or freeze ``model`` so that only what ``adapter`` names trains; returns the model to train."""
    if adapter.method == "full":
        model.requires_grad_(True)
        return model
    if adapter.method == "freeze":
        freeze_all_but_last_layers(model, adapter.freeze_last_n_layers)
        return model
    if adapter.method == "bottleneck":
        config = bottleneck.BottleneckConfig(
            placement=adapter.placement, reduction_factor=adapter.reduction_factor, non_linearity=adapter.non_linearity
        )
        carried = bottleneck.attached_config(model)
        if carried is None:
            bottleneck.attach(model, config)
        else:
            _check_same_adapters(carried, config)  # an earlier stage's adapters: they train on
        bottleneck.train_only_adapters(model)
        model.enable_input_require_grads()  # as for PEFT below: checkpointed blocks need a grad-requiring input
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    if adapter.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    # With the base frozen, nothing before the first adapter needs a gradient, and checkpointed
    # blocks (the default on CUDA) would then pass none back; a grad-requiring input fixes that.
    model.enable_input_require_grads()
    return get_peft_model(model, peft_config(adapter, task_type=task_type))


def _check_same_adapters(carried: bottleneck.BottleneckConfig, wanted: bottleneck.BottleneckConfig) -> None:
    for name in ("placement", "reduction_factor", "non_linearity"):
        if getattr(carried, name) != getattr(wanted, name):
            raise ValueError(
                f"adapter.{name}: the model already carries bottleneck adapters from an earlier stage, with "
                f"{name} {getattr(carried, name)!r}; they train on in this stage, so give the same {name}"
            )


def freeze_all_but_last_layers(model: PreTrainedModel, n_layers: int) -> None:
    """Train the last ``n_layers`` decoder blocks, the final norm and any classification head; freeze the rest."""
    layers = decoder_layers(model)
    if n_layers > len(layers):
        raise ValueError(f"adapter.freeze_last_n_layers is {n_layers} but the model has {len(layers)} layers")
    model.requires_grad_(False)
    for layer in layers[-n_layers:]:
        layer.requires_grad_(True)
    base = getattr(model, model.base_model_prefix, model)
    final_norm = getattr(base, "norm", None) or getattr(base, "ln_f", None)
    if final_norm is not None:
        final_norm.requires_grad_(True)
    for head_name in ("score", "classifier"):
        head = getattr(model, head_name, None)
        if head is not None:
            head.requires_grad_(True)


def decoder_layers(model: PreTrainedModel) -> nn.ModuleList:
    """The stack of transformer blocks: the longest ModuleList in the model (Llama `layers`, GPT-2 `h`)."""
    stacks = [module for module in model.modules() if isinstance(module, nn.ModuleList)]
    if not stacks:
        raise ValueError(f"{type(model).__name__} has no stack of layers to freeze")
    return max(stacks, key=len)


def count_parameters(model: nn.Module) -> ParameterCounts:
    trainable = total = 0
    for parameter in model.parameters():
        count = parameter.numel()
        if hasattr(parameter, "ds_numel"):  # DeepSpeed ZeRO-3 keeps a placeholder locally
            count = parameter.ds_numel
        total += count
        trainable += count if parameter.requires_grad else 0
    return ParameterCounts(trainable=trainable, total=total)
