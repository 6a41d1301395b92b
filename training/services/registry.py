"""The model registry: registering local models by hand, and the models training runs produce.

Nothing here loads weights: sizes and parameter counts come from the safetensors headers or the
GGUF tensor table. Only local directories and files are accepted, and models that ship their own
code (``auto_map`` in config.json) are refused: the platform never runs remote code.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from training.errors import TrainingError
from training.models import ModelArtifact, TrainingRun


def model_register(
    *,
    path: str,
    name: str,
    created_by: AbstractBaseUser | None = None,
    kind: str | None = None,
    gguf_file: str = "",
    base_model: ModelArtifact | None = None,
) -> ModelArtifact:
    """Register a local safetensors or adapter directory, or a GGUF file (a ``.gguf`` path or ``gguf_file``)."""
    name = (name or "").strip()
    if not name:
        raise TrainingError("A model needs a name.", {"name": "This field is required."})
    if kind is not None and kind not in ModelArtifact.Kind.values:
        raise TrainingError(f"Unknown kind {kind!r}.", {"kind": f"One of {', '.join(ModelArtifact.Kind.values)}."})
    directory, gguf_file = _local_model_location(path, gguf_file)
    facts = _gguf_facts(directory / gguf_file) if gguf_file else _directory_facts(directory)
    detected_kind = facts.pop("kind")
    if base_model is None and facts.get("base_path"):
        base_model = ModelArtifact.objects.filter(path=facts["base_path"]).first()
    facts.pop("base_path", None)
    return ModelArtifact.objects.create(
        name=name[:200],
        kind=kind or detected_kind,
        path=str(directory),
        gguf_file=gguf_file,
        base_model=base_model,
        created_by=created_by,
        **facts,
    )


def model_register_once(*, path: str, name: str, gguf_file: str = "", **fields: Any) -> tuple[ModelArtifact, bool]:
    """``model_register``, unless a model of this name is registered at this location already (set-up scripts).

    Returns the model and whether it was registered now.
    """
    directory, gguf_file = _local_model_location(path, gguf_file)
    existing = ModelArtifact.objects.filter(name=(name or "").strip()[:200], path=str(directory), gguf_file=gguf_file)
    if existing.exists():
        return existing.first(), False
    return model_register(path=path, name=name, gguf_file=gguf_file, **fields), True


def model_register_run_output(*, run: TrainingRun, output_dir: Path, final_metrics: dict[str, Any]) -> ModelArtifact:
    """The artifact for a finished run's ``output_dir/model``, with its lineage (run, snapshot, base)."""
    directory = output_dir / "model"
    facts = _directory_facts(directory)
    facts.pop("base_path", None)
    detected_kind = facts.pop("kind")
    kind = ModelArtifact.Kind.REWARD_MODEL if run.stage == "reward" else detected_kind
    base_model = run.input_model if detected_kind == ModelArtifact.Kind.ADAPTER else None
    if final_metrics.get("total_parameters"):
        facts["parameter_count"] = final_metrics["total_parameters"]
    prefix = run.round.name if run.round_id else "run"
    return ModelArtifact.objects.create(
        name=f"{prefix} · {run.stage} (run {run.pk})"[:200],
        kind=kind,
        path=str(directory.resolve()),
        base_model=base_model,
        produced_by=run,
        dataset=run.dataset,
        evaluation=final_metrics,
        trainable_parameter_count=final_metrics.get("trainable_parameters"),
        created_by=run.launched_by,
        **{k: v for k, v in facts.items() if k != "trainable_parameter_count"},
    )


# --- inspecting files ---------------------------------------------------------------------------


def _local_model_location(path: str, gguf_file: str) -> tuple[Path, str]:
    """The model's directory and GGUF file name; refuses anything that is not a local model."""
    raw = (path or "").strip()
    if not raw:
        raise TrainingError("Give the model's local path.", {"path": "This field is required."})
    if "://" in raw:
        raise TrainingError("Models are registered from local paths only.", {"path": "Not a local path."})
    location = Path(raw).expanduser().resolve()
    if location.is_file():
        if location.suffix != ".gguf":
            raise TrainingError(
                f"{location} is a file but not a .gguf file.", {"path": "A model directory or a .gguf file."}
            )
        if gguf_file and gguf_file != location.name:
            raise TrainingError("The path already names a GGUF file.", {"gguf_file": "Leave it out, or give the dir."})
        return location.parent, location.name
    if not location.is_dir():
        raise TrainingError(f"{location} does not exist on this machine.", {"path": "No such local directory."})
    if gguf_file and (Path(gguf_file).name != gguf_file or not (location / gguf_file).is_file()):
        raise TrainingError(f"{gguf_file} is not a file in {location}.", {"gguf_file": "No such file here."})
    return location, gguf_file


def _directory_facts(directory: Path) -> dict[str, Any]:
    """Kind, size and parameter count of a safetensors model or PEFT adapter directory."""
    adapter_config = directory / "adapter_config.json"
    if adapter_config.is_file():
        weights = sorted(directory.glob("adapter_model*.safetensors"))
        if not weights:
            raise TrainingError(f"{directory} has adapter_config.json but no adapter weights.", {"path": "Incomplete."})
        base = json.loads(adapter_config.read_text()).get("base_model_name_or_path") or ""
        count = sum(_safetensors_parameters(file) for file in weights)
        return {
            "kind": ModelArtifact.Kind.ADAPTER,
            "base_path": base,
            "size_bytes": sum(file.stat().st_size for file in weights),
            "trainable_parameter_count": count,
        }
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise TrainingError(f"{directory} has no config.json: not a model directory.", {"path": "Not a model."})
    config = json.loads(config_file.read_text())
    if config.get("auto_map"):
        raise TrainingError(
            "This model needs its own code (auto_map in config.json); the platform never runs remote code.",
            {"path": "Custom-code models are not supported."},
        )
    weights = sorted(directory.glob("*.safetensors"))
    if not weights:
        raise TrainingError(
            f"{directory} has no .safetensors weights (only safetensors or GGUF models are loaded).",
            {"path": "No safetensors weights."},
        )
    architectures = config.get("architectures") or []
    is_reward = any(name.endswith("ForSequenceClassification") for name in architectures)
    return {
        "kind": ModelArtifact.Kind.REWARD_MODEL if is_reward else ModelArtifact.Kind.CAUSAL_LM,
        "size_bytes": sum(file.stat().st_size for file in weights),
        "parameter_count": sum(_safetensors_parameters(file) for file in weights),
    }


def _safetensors_parameters(file: Path) -> int:
    """Parameters in a safetensors file, from its JSON header (8-byte length, then the header)."""
    with file.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    total = 0
    for name, tensor in header.items():
        if name != "__metadata__":
            count = 1
            for dimension in tensor["shape"]:
                count *= dimension
            total += count
    return total


def _gguf_facts(file: Path) -> dict[str, Any]:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(file))
    except (ValueError, OSError) as error:
        raise TrainingError(f"{file.name} is not a readable GGUF file: {error}", {"path": "Bad GGUF."}) from None
    return {
        "kind": ModelArtifact.Kind.CAUSAL_LM,
        "size_bytes": file.stat().st_size,
        "parameter_count": int(sum(int(tensor.n_elements) for tensor in reader.tensors)),
    }
