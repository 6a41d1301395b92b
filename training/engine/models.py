"""Models and tokenizers from local disk only, on the device the machine has.

CUDA: bf16 weights and flash attention when ``flash_attn`` is installed. CPU: fp32 and SDPA.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from training.engine import bottleneck

logger = logging.getLogger(__name__)

# Given to a tokenizer that has none, so conversational rows (`messages`, or prompt/completion as
# message lists) can be rendered. ChatML, as used by SmolLM2 and Qwen; the {% generation %} markers
# let TRL find the assistant tokens.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}<|im_start|>assistant\n{% generation %}"
    "{{ message['content'] }}<|im_end|>{% endgeneration %}\n"
    "{% else %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class Device:
    cuda: bool
    dtype: torch.dtype
    attn_implementation: str

    @property
    def bf16(self) -> bool:
        return self.dtype == torch.bfloat16


def detect_device() -> Device:
    if not torch.cuda.is_available():
        return Device(cuda=False, dtype=torch.float32, attn_implementation="sdpa")
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    flash = importlib.util.find_spec("flash_attn") is not None
    return Device(cuda=True, dtype=dtype, attn_implementation="flash_attention_2" if flash else "sdpa")


def load_tokenizer(path: str, *, gguf_file: str | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer saved with the model, with a pad token and a chat template guaranteed."""
    tokenizer_dir = path
    if not _has_tokenizer(Path(path)):
        adapter = bottleneck.read_config(path)
        base = adapter.base_model_name_or_path if adapter is not None else _adapter_base(path)
        tokenizer_dir = base or path
    tokenizer = AutoTokenizer.from_pretrained(
        tokenizer_dir, gguf_file=gguf_file, trust_remote_code=False, local_files_only=True
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Whether the model came with its own template (a chat model) or gets the engine's default.
    tokenizer.has_own_chat_template = bool(tokenizer.chat_template)
    if not tokenizer.chat_template:
        logger.info("%s has no chat template; using the engine's default (ChatML)", path)
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return tokenizer


def load_causal_lm(
    path: str, device: Device, *, gguf_file: str | None = None, quantize_4bit: bool = False
) -> PreTrainedModel:
    return _load(AutoModelForCausalLM, path, device, gguf_file=gguf_file, quantize_4bit=quantize_4bit)


def load_reward_model(
    path: str, device: Device, *, gguf_file: str | None = None, quantize_4bit: bool = False
) -> PreTrainedModel:
    """A sequence classifier with one output: a reward model, or a causal LM given a fresh scalar head."""
    return _load(
        AutoModelForSequenceClassification, path, device, gguf_file=gguf_file, quantize_4bit=quantize_4bit, num_labels=1
    )


def _load(auto_class, path: str, device: Device, *, gguf_file, quantize_4bit: bool, **kwargs) -> PreTrainedModel:
    adapter = bottleneck.read_config(path)
    if adapter is not None:
        # A bottleneck adapter from an earlier stage: its base, with the adapters attached and loaded
        # (they cannot be merged into the base's weights).
        if not adapter.base_model_name_or_path:
            raise ValueError(f"{path}/{bottleneck.CONFIG_FILE} names no base model (base_model_name_or_path)")
        model = _load(
            auto_class, adapter.base_model_name_or_path, device, gguf_file=None, quantize_4bit=quantize_4bit, **kwargs
        )
        carried = bottleneck.attached_config(model)
        if carried is None:
            bottleneck.attach(model, adapter)
        elif (carried.placement, carried.reduction_factor, carried.non_linearity) != (
            adapter.placement,
            adapter.reduction_factor,
            adapter.non_linearity,
        ):
            raise ValueError(f"{path}: its base carries bottleneck adapters of another shape than its own")
        # (Adapters the base carries are the ones this directory's stage trained on: its weights replace theirs.)
        bottleneck.load_weights(model, [Path(path) / bottleneck.WEIGHTS_FILE])
        model.config.name_or_path = path
        return model
    base = _adapter_base(path)
    options = {
        "dtype": device.dtype,
        "attn_implementation": device.attn_implementation,
        "trust_remote_code": False,
        "local_files_only": True,
        **kwargs,
    }
    if quantize_4bit:
        options.update(_four_bit_options(device))
    if gguf_file is None:
        # Pickle weights (pytorch_model.bin) can run code when loaded: the registry accepts
        # safetensors only, and so does the engine, for a base an adapter names as well.
        options["use_safetensors"] = True
    if base is not None:
        # A PEFT adapter from an earlier stage: load its base (which may carry bottleneck adapters), apply and merge it.
        from peft import PeftModel

        model = _load(auto_class, base, device, gguf_file=None, quantize_4bit=quantize_4bit, **kwargs)
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    elif gguf_file is not None:
        model = _dequantized_gguf(auto_class, path, gguf_file, options)
    else:
        model = auto_class.from_pretrained(path, **options)
        _reattach_bottlenecks(model, Path(path))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    return model


def _reattach_bottlenecks(model: PreTrainedModel, directory: Path) -> None:
    """A whole model saved with bottleneck adapters in it (its config.json names them): attach them
    again and load their weights, which ``from_pretrained`` passed over as unknown keys."""
    marked = getattr(model.config, bottleneck.CONFIG_ATTRIBUTE, None)
    if not marked:
        return
    config = bottleneck.BottleneckConfig(**{**marked, "base_model_name_or_path": ""})
    bottleneck.check_config(config, where=f"{directory}/config.json {bottleneck.CONFIG_ATTRIBUTE}")
    bottleneck.attach(model, config)
    bottleneck.load_weights(model, sorted(directory.glob("*.safetensors")))


def _dequantized_gguf(auto_class, path: str, gguf_file: str, options: dict) -> PreTrainedModel:
    """Load a GGUF file as a plain model that can be saved.

    transformers dequantizes GGUF weights on load but marks the model as GGUF-quantized, and
    ``save_pretrained`` refuses such a model; a model rebuilt from its config without the marker,
    holding the same weights, saves normally.
    """
    loaded = auto_class.from_pretrained(path, gguf_file=gguf_file, **options)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = auto_class.from_config(config, dtype=options["dtype"], attn_implementation=options["attn_implementation"])
    model.load_state_dict(loaded.state_dict())
    model.config.name_or_path = path
    return model


def _four_bit_options(device: Device) -> dict:
    if not device.cuda:
        raise RuntimeError("qlora needs a CUDA device (4-bit weights come from bitsandbytes' CUDA kernels)")
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=device.dtype,
    )
    return {"quantization_config": quantization, "device_map": {"": torch.cuda.current_device()}}


def _adapter_base(path: str) -> str | None:
    """The base model directory a PEFT adapter names, or None when ``path`` is not an adapter."""
    config = Path(path) / "adapter_config.json"
    if not config.is_file():
        return None
    try:
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise ValueError(f"{config} is not a JSON object naming base_model_name_or_path") from None
    if not isinstance(base, str) or not base:
        raise ValueError(f"{config} names no base model (base_model_name_or_path)")
    return base


def _has_tokenizer(directory: Path) -> bool:
    return (directory / "tokenizer_config.json").is_file()


def frozen_reference(policy: PreTrainedModel, *, reference_path: str | None, method: str, device: Device):
    """The frozen reference of DPO and PPO, given the policy before it trains.

    A ``reference_path`` is loaded; a fully trained or partly frozen policy is copied as it is now
    (no second load: dequantizing a GGUF file again takes as long as the first time); an adapter
    policy needs none, its reference being the base with the adapter switched off.
    """
    if reference_path is not None:
        return load_causal_lm(reference_path, device)
    if method in ("full", "freeze", "bottleneck"):
        # A bottleneck policy has no switch to turn its adapters off, as PEFT's have: copy it before they are attached.
        return copy.deepcopy(policy).requires_grad_(False).eval()
    return None
