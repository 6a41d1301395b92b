"""The model registry: registering local models by hand, and the models training runs produce.

Nothing here loads weights: sizes and parameter counts come from the safetensors headers or the
GGUF tensor table. Only local directories and files are accepted, and models that ship their own
code (``auto_map`` in config.json) are refused: the platform never runs remote code. An adapter's
base model is held to the same rules (local, no custom code, safetensors weights), since loading
the adapter loads it. Every file read here may be damaged or not what its name says: each is
checked before it is trusted, and a bad one is a ``TrainingError`` naming the file, not a crash.
Paths from the pages and the API are confined to ``settings.MODEL_ROOTS`` (``training.paths``).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from rlhf_platform import json_limits
from rlhf_platform.audit import Action, audit_record
from training.errors import TrainingError
from training.models import ModelArtifact, TrainingRun
from training.paths import adapter_base_roots, confined_path, model_roots

# An adapter directory's config file, and its weight files: PEFT's, and the engine's bottleneck adapter's.
ADAPTER_FILES = {
    "adapter_config.json": "adapter_model*.safetensors",
    "bottleneck_config.json": "bottleneck_model.safetensors",
}
# The safetensors format's own bound on its JSON header (safetensors' MAX_HEADER_SIZE, 100 MB).
SAFETENSORS_HEADER_MAX_BYTES = 100_000_000
# config.json and adapter_config.json are a few kilobytes; anything this large is not one.
CONFIG_MAX_BYTES = 16 * 2**20


def model_register(
    *,
    path: str,
    name: str,
    created_by: AbstractBaseUser | None = None,
    kind: str | None = None,
    gguf_file: str = "",
    base_model: ModelArtifact | None = None,
    confined: bool = True,
) -> ModelArtifact:
    """Register a local safetensors or adapter directory, or a GGUF file (a ``.gguf`` path or ``gguf_file``).

    ``confined``: the path must lie inside ``settings.MODEL_ROOTS`` (and an adapter's base too).
    Only ``manage.py register_model`` passes False: an operator at the server's shell can read
    any file already, and set-up scripts register models wherever they were put.
    """
    name = (name or "").strip()
    if not name:
        raise TrainingError("A model needs a name.", {"name": "This field is required."})
    if kind is not None and kind not in ModelArtifact.Kind.values:
        raise TrainingError(f"Unknown kind {kind!r}.", {"kind": f"One of {', '.join(ModelArtifact.Kind.values)}."})
    directory, gguf_file = _local_model_location(path, gguf_file, confined=confined)
    if gguf_file:
        facts = _gguf_facts(directory / gguf_file)
    else:
        facts = _directory_facts(directory, base_roots=adapter_base_roots() if confined else None)
    detected_kind = facts.pop("kind")
    if base_model is None and facts.get("base_path"):
        base_model = ModelArtifact.objects.filter(path=facts["base_path"]).first()
    facts.pop("base_path", None)
    with transaction.atomic():
        model = ModelArtifact.objects.create(
            name=name[:200],
            kind=kind or detected_kind,
            path=str(directory),
            gguf_file=gguf_file,
            base_model=base_model,
            created_by=created_by,
            **facts,
        )
        audit_record(actor=created_by, action=Action.MODEL_REGISTER, target=model, path=model.path, kind=model.kind)
    return model


def model_register_once(
    *, path: str, name: str, gguf_file: str = "", confined: bool = True, **fields: Any
) -> tuple[ModelArtifact, bool]:
    """``model_register``, unless a model of this name is registered at this location already (set-up scripts).

    Returns the model and whether it was registered now.
    """
    directory, gguf_file = _local_model_location(path, gguf_file, confined=confined)
    existing = ModelArtifact.objects.filter(name=(name or "").strip()[:200], path=str(directory), gguf_file=gguf_file)
    if existing.exists():
        return existing.first(), False
    return model_register(path=path, name=name, gguf_file=gguf_file, confined=confined, **fields), True


def model_register_run_output(*, run: TrainingRun, output_dir: Path, final_metrics: dict[str, Any]) -> ModelArtifact:
    """The artifact for a finished run's ``output_dir/model``, with its lineage (run, snapshot, base)."""
    directory = output_dir / "model"
    # The engine wrote it, from a base the round's launch checked: its adapter's base is not checked again.
    facts = _directory_facts(directory, base_roots=None, check_base=False)
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


def _local_model_location(path: str, gguf_file: str, *, confined: bool) -> tuple[Path, str]:
    """The model's directory and GGUF file name; refuses anything that is not a local model."""
    raw = (path or "").strip()
    if not raw:
        raise TrainingError("Give the model's local path.", {"path": "This field is required."})
    if "://" in raw:
        raise TrainingError("Models are registered from local paths only.", {"path": "Not a local path."})
    # The command (unconfined) expands ~ as the operator's shell would; the API refuses it.
    location = confined_path(raw, roots=model_roots(), field="path") if confined else Path(raw).expanduser().resolve()
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
    if gguf_file and not gguf_file.endswith(".gguf"):
        raise TrainingError(f"{gguf_file} is not a .gguf file.", {"gguf_file": "A .gguf file."})
    return location, gguf_file


def _directory_facts(directory: Path, *, base_roots: list[Path] | None, check_base: bool = True) -> dict[str, Any]:
    """Kind, size and parameter count of a safetensors model or adapter directory (PEFT or bottleneck).

    An adapter's base (``base_model_name_or_path``) must pass the same checks as a model registered
    on its own, inside ``base_roots`` when given; ``check_base`` False skips that (a run's output).
    """
    for config_name, weights_pattern in ADAPTER_FILES.items():
        adapter_config = directory / config_name
        if adapter_config.is_file():
            return _adapter_facts(
                directory, adapter_config, weights_pattern, base_roots=base_roots, check_base=check_base
            )
    facts = _full_model_facts(directory)
    facts.pop("architectures")
    return facts


def _adapter_facts(
    directory: Path, adapter_config: Path, weights_pattern: str, *, base_roots: list[Path] | None, check_base: bool
) -> dict[str, Any]:
    """A PEFT or bottleneck adapter directory: its weights, and the base model its config names."""
    weights = sorted(directory.glob(weights_pattern))
    if not weights:
        raise TrainingError(f"{directory} has {adapter_config.name} but no adapter weights.", {"path": "Incomplete."})
    base = _json_object(adapter_config).get("base_model_name_or_path")
    if check_base:
        base = _checked_adapter_base(adapter_config, base, base_roots)
    count = sum(_safetensors_parameters(file) for file in weights)
    return {
        "kind": ModelArtifact.Kind.ADAPTER,
        "base_path": base if isinstance(base, str) else "",
        "size_bytes": sum(file.stat().st_size for file in weights),
        "trainable_parameter_count": count,
    }


def _full_model_facts(directory: Path) -> dict[str, Any]:
    """A model directory with a config.json object, no custom code, and safetensors weights."""
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise TrainingError(f"{directory} has no config.json: not a model directory.", {"path": "Not a model."})
    config = _json_object(config_file)
    if config.get("auto_map"):
        raise TrainingError(
            f"{directory} needs its own code (auto_map in config.json); the platform never runs remote code.",
            {"path": "Custom-code models are not supported."},
        )
    weights = sorted(directory.glob("*.safetensors"))
    if not weights:
        raise TrainingError(
            f"{directory} has no .safetensors weights (only safetensors or GGUF models are loaded).",
            {"path": "No safetensors weights."},
        )
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list) or not all(isinstance(name, str) for name in architectures):
        raise TrainingError(
            f"{config_file}: architectures must be a list of class names.", {"path": f"Bad {config_file.name}."}
        )
    is_reward = any(name.endswith("ForSequenceClassification") for name in architectures)
    return {
        "kind": ModelArtifact.Kind.REWARD_MODEL if is_reward else ModelArtifact.Kind.CAUSAL_LM,
        "size_bytes": sum(file.stat().st_size for file in weights),
        "parameter_count": sum(_safetensors_parameters(file) for file in weights),
        "architectures": architectures,
    }


def _checked_adapter_base(adapter_config: Path, base: Any, roots: list[Path] | None) -> str:
    """The adapter's base model directory, resolved, held to the rules of a model registered on its own.

    Loading an adapter loads its base first (``training.engine.models``): a base with custom code
    or pickle weights would otherwise come in through an adapter that looks harmless.
    """
    if not isinstance(base, str) or not base.strip():
        raise TrainingError(
            f"{adapter_config} names no base model (base_model_name_or_path).", {"path": "No base model."}
        )
    base = base.strip()
    if "://" in base or not Path(base).is_absolute():
        raise TrainingError(
            f"{adapter_config}: the base model {base!r} is not a local directory (models are never loaded "
            "from a hub); register the adapter with its base_model_name_or_path set to the base's directory.",
            {"path": "The base model is not local."},
        )
    location = confined_path(base, roots=roots, field="path") if roots is not None else Path(base).resolve()
    if not location.is_dir():
        raise TrainingError(
            f"{adapter_config}: its base model {location} is not a directory on this machine.",
            {"path": "The base model is missing."},
        )
    if any((location / config_name).is_file() for config_name in ADAPTER_FILES):
        raise TrainingError(
            f"{adapter_config}: its base model {location} is an adapter itself; the base must be a full model.",
            {"path": "The base model is an adapter."},
        )
    try:
        _full_model_facts(location)
    except TrainingError as error:
        raise TrainingError(f"The adapter's base model is refused: {error.message}", {"path": error.message}) from None
    return str(location)


def _json_object(file: Path) -> dict[str, Any]:
    """A small JSON file holding an object (config.json, adapter_config.json)."""
    if file.stat().st_size > CONFIG_MAX_BYTES:
        raise TrainingError(
            f"{file} is {file.stat().st_size:,} bytes: too large to be a model's {file.name}.",
            {"path": f"Bad {file.name}."},
        )
    try:
        value = json_limits.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise TrainingError(f"{file} is not UTF-8 text (byte {error.start}).", {"path": f"Bad {file.name}."}) from None
    except json.JSONDecodeError as error:
        raise TrainingError(
            f"{file} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).",
            {"path": f"Bad {file.name}."},
        ) from None
    except json_limits.NestedTooDeeply as error:
        raise TrainingError(f"{file}: {error}.", {"path": f"Bad {file.name}."}) from None
    if not isinstance(value, dict):
        raise TrainingError(f"{file} must hold a JSON object, not {_json_type(value)}.", {"path": f"Bad {file.name}."})
    return value


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), "null")


def _safetensors_parameters(file: Path) -> int:
    """Parameters in a safetensors file, from its JSON header (8-byte length, then the header).

    The declared length is checked against the file's size before anything is read: a garbage
    header may declare 2^62 bytes, which ``read`` would try to allocate. Each tensor's shape and
    byte range are checked too, so a file cut short is refused here rather than when a run loads it.
    """

    def bad(reason: str) -> TrainingError:
        return TrainingError(f"{file} is not a valid safetensors file: {reason}.", {"path": f"Bad {file.name}."})

    size = file.stat().st_size
    if size < 8:
        raise bad(f"it is {size} bytes long, shorter than the 8-byte header length")
    with file.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > size - 8:
            raise bad(f"its header declares {length:,} bytes but the file holds {size - 8:,} after the length")
        if length > SAFETENSORS_HEADER_MAX_BYTES:
            raise bad(f"its header declares {length:,} bytes, over the format's limit")
        raw = handle.read(length)
    try:
        header = json_limits.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, json_limits.NestedTooDeeply):
        raise bad("its header is not a JSON object") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    data_bytes = size - 8 - length
    total = 0
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        shape = tensor.get("shape") if isinstance(tensor, dict) else None
        offsets = tensor.get("data_offsets") if isinstance(tensor, dict) else None
        if not isinstance(shape, list) or not all(_natural(dimension) for dimension in shape):
            raise bad(f"tensor {name!r} has no valid shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_natural(offset) for offset in offsets)):
            raise bad(f"tensor {name!r} has no valid data_offsets")
        if not offsets[0] <= offsets[1] <= data_bytes:
            raise bad(f"tensor {name!r} lies past the end of the file (the file is truncated)")
        count = 1
        for dimension in shape:
            count *= dimension
        total += count
    return total


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _gguf_facts(file: Path) -> dict[str, Any]:
    from gguf import GGUFReader

    with file.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise TrainingError(f"{file.name} is not a GGUF file (it does not start with GGUF).", {"path": "Bad GGUF."})
    try:
        reader = GGUFReader(str(file))
        parameters = int(sum(int(tensor.n_elements) for tensor in reader.tensors))
    except (ValueError, OSError, IndexError, KeyError, TypeError, struct.error) as error:
        # gguf's reader reports a damaged or truncated file by whichever error its parsing meets first.
        raise TrainingError(
            f"{file.name} is not a readable GGUF file (damaged or truncated: {type(error).__name__}).",
            {"path": "Bad GGUF."},
        ) from None
    return {"kind": ModelArtifact.Kind.CAUSAL_LM, "size_bytes": file.stat().st_size, "parameter_count": parameters}
