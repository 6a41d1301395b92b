"""Engine specs from launch settings. Pure functions: no ORM.

A launch names a few hyperparameters per stage (``STAGE_SETTING_FIELDS``) and an ``advanced``
dict of any other engine spec field; the wiring (models, datasets, output directory, resume) is
the platform's and cannot be set by hand. A setting applies to the stages whose spec has its field
(``beta`` to DPO, ``max_steps`` to every training stage, neither to evaluation). The engine's field
checks (``training.engine.stages.load_spec`` without paths) check the result.
"""

from __future__ import annotations

from typing import Any

from training.engine.spec import AdapterSpec, SpecError, TrainingSpec
from training.engine.stages import STAGES, load_spec

# The launch form's fields, with the engine spec field each one sets.
STAGE_SETTING_FIELDS = {
    "adapter": "adapter.method",
    "learning_rate": "learning_rate",
    "max_steps": "max_steps",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "max_length": "max_length",
    "logging_steps": "logging_steps",
    "save_steps": "save_steps",
    "seed": "seed",
    "beta": "beta",  # dpo
    "kl_coef": "kl_coef",  # ppo
    "response_length": "response_length",  # ppo
    "text_field": "text_field",  # pretrain
}
# Set by the platform from the round's models, snapshot and working directory.
WIRING_FIELDS = frozenset(
    {"stage", "model", "gguf_file", "output_dir", "dataset", "eval_dataset", "reward_model", "resume_from"}
    | {"kind", "preferences", "prompts", "perplexity_texts", "benchmark_data"}  # evaluate
)


class LaunchError(ValueError):
    """Launch settings the engine would reject; ``field`` names the setting at fault."""

    def __init__(self, message: str, field: str = "settings"):
        super().__init__(message)
        self.message = message
        self.field = field


def build_spec(
    *,
    stage: str,
    settings: dict[str, Any],
    model: str,
    output_dir: str,
    wiring: dict[str, Any] | None = None,
    gguf_file: str = "",
    resume_from: str = "",
) -> dict[str, Any]:
    """The engine spec dict for one stage: the platform's wiring, then the launch settings, then ``advanced``.

    ``wiring`` holds the other fields the platform sets (datasets, the reward model, an evaluation's
    held-out files); None values are left out. No setting may change a wired field.
    """
    wiring = {name: value for name, value in (wiring or {}).items() if value is not None and value != ""}
    spec: dict[str, Any] = {"stage": stage, "model": model, "output_dir": output_dir, **wiring}
    if gguf_file:
        spec["gguf_file"] = gguf_file
    if resume_from:
        spec["resume_from"] = resume_from
    unknown = set(settings) - set(STAGE_SETTING_FIELDS) - {"advanced"}
    if unknown:
        name = sorted(unknown)[0]
        raise LaunchError(f"Unknown setting {name!r}; put engine fields under 'advanced'.", name)
    for name, value in settings.items():
        if name == "advanced" or value is None:
            continue
        if not setting_applies(stage, name):
            continue  # e.g. beta in settings shared by every stage of an SFT -> DPO round
        if name == "adapter":
            spec["adapter"] = {"method": value}
        else:
            spec[STAGE_SETTING_FIELDS[name]] = value
    advanced = settings.get("advanced") or {}
    if not isinstance(advanced, dict):
        raise LaunchError("'advanced' must be an object of engine spec fields.", "advanced")
    wired = sorted((WIRING_FIELDS | set(wiring)) & set(advanced))
    if wired:
        raise LaunchError(f"advanced.{wired[0]} is set by the platform and cannot be given.", "advanced")
    for name, value in advanced.items():
        if name == "adapter" and isinstance(value, dict):
            spec["adapter"] = {**spec.get("adapter", {}), **value}
        else:
            spec[name] = value
    if spec.get("learning_rate") is None and _trains(stage):
        # Written out, so the run's spec (and its page) names the rate it trains with.
        spec["learning_rate"] = default_learning_rate(stage, _adapter_method(spec))
    return spec


def setting_applies(stage: str, name: str) -> bool:
    """Whether the launch setting (or ``advanced`` field) ``name`` is a field of ``stage``'s spec."""
    return STAGES[stage].has_field(STAGE_SETTING_FIELDS.get(name, name).split(".")[0])


def default_learning_rate(stage: str, adapter_method: str) -> float:
    """The engine's learning rate for ``stage`` when none is given, with that adapter method."""
    return STAGES[stage].spec.default_learning_rate(adapter_method)


def stage_learning_rate(stage: str, settings: dict[str, Any]) -> float | None:
    """The learning rate one stage trains with under these launch settings (None for a stage that does not train)."""
    if not _trains(stage):
        return None
    return build_spec(stage=stage, settings=settings, model="", output_dir="")["learning_rate"]


def run_learning_rate(*, stage: str, settings: dict[str, Any], spec: dict[str, Any] | None) -> float | None:
    """The learning rate a run trains with: its built spec's, or, before the run starts, its settings'.

    None for a stage that does not train, and for a spec built before specs named their rate.
    """
    if spec:
        return spec.get("learning_rate")
    return stage_learning_rate(stage, settings)


def _trains(stage: str) -> bool:
    return stage in STAGES and issubclass(STAGES[stage].spec, TrainingSpec)


def _adapter_method(spec: dict[str, Any]) -> str:
    adapter = spec.get("adapter")
    method = adapter.get("method") if isinstance(adapter, dict) else None
    return method or AdapterSpec().method


def check_spec(spec: dict[str, Any], *, field: str = "settings") -> None:
    """Run the engine's field checks (types, ranges, combinations): no file is read, no model loaded."""
    try:
        load_spec(spec, check_paths=False)
    except SpecError as error:
        raise LaunchError(f"The {spec.get('stage')} stage's spec was rejected: {error}", field) from None


def settings_for(stage: str, shared: dict[str, Any], per_stage: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One stage's settings: the round's shared settings that apply to it, overridden by that stage's own."""
    own = dict(per_stage.get(stage) or {})
    shared_advanced = shared.get("advanced") if isinstance(shared.get("advanced"), dict) else {}
    merged = {name: value for name, value in shared.items() if name != "advanced" and setting_applies(stage, name)}
    merged.update(own)
    merged["advanced"] = {
        **{name: value for name, value in shared_advanced.items() if setting_applies(stage, name)},
        **(own.get("advanced") or {}),
    }
    return merged


def check_shared_settings(stages: list[str], shared: dict[str, Any]) -> None:
    """Every shared ``advanced`` field is a field of at least one of the round's stages: a misspelt one
    is an error, not a setting silently left out of every stage. (The named settings are the launch
    form's, and each round skips those its stages lack, such as beta in an SFT round.)"""
    advanced = shared.get("advanced") or {}
    if not isinstance(advanced, dict):
        raise LaunchError("'advanced' must be an object of engine spec fields.", "advanced")
    for name in advanced:
        if name not in WIRING_FIELDS and not any(setting_applies(stage, name) for stage in stages):
            known = sorted({f for stage in stages for f in STAGES[stage].spec.__dataclass_fields__} - WIRING_FIELDS)
            raise LaunchError(
                f"advanced.{name} is not a setting of any stage of this round ({', '.join(stages)}); "
                f"known settings: {', '.join(known)}.",
                "advanced",
            )
