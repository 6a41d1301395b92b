"""Launching a comparison: N variants of one setup, each an ordinary round, on the same data.

A comparison trains every variant from the same base model on the same snapshot, with the same
seed and the same budget, so their figures differ by the method alone. Variants come from the
engine's own tables, so a method or stage the engine gains is offered without an edit here:
adapter methods from ``AdapterMethod`` (``training.engine.spec``), alignment stages from
``STAGES``. Each variant is a round of the ``single`` preset, checked by ``round_launch`` like any
other (the evaluate stage appended unless switched off), and queued like any other.

qlora stays on offer: the web host may have no GPU while a worker does. On a worker without CUDA
the engine refuses it when the run starts ("qlora needs a CUDA device"), and only that variant fails.
"""

from __future__ import annotations

import typing
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from labeling.models import PreferenceDataset
from training.engine.spec import AdapterMethod
from training.engine.stages import STAGES
from training.errors import TrainingError
from training.models import Comparison, ModelArtifact, Round, Stage
from training.services.rounds import round_launch

# Variants per comparison: one chart colour each (``training.charts.SERIES_COLOURS``).
MAX_VARIANTS = 8
# Settings the comparison sets itself, the same for every variant (or the variant itself).
FIXED_SETTINGS = ("seed", "max_steps", "epochs", "adapter")


def adapter_variants() -> list[str]:
    """Every adapter method the engine trains with, in its own order."""
    return list(typing.get_args(AdapterMethod))


def alignment_variants() -> list[str]:
    """The stages that align a policy on preferences, prompts or labels: every policy stage except
    pretraining and SFT (DPO, PPO, and whatever the engine's table adds)."""
    return [
        name
        for name in Stage.values
        if STAGES[name].makes == "policy" and STAGES[name].trains_on not in (None, "text", "demonstrations")
    ]


def comparison_stages() -> list[str]:
    """The stages whose adapter methods can be compared: those that train on a snapshot's rows."""
    return [name for name in Stage.values if STAGES[name].trains_on is not None and STAGES[name].reads_snapshot]


def comparison_launch(
    *,
    kind: str,
    variants: list[str],
    base_model: ModelArtifact,
    dataset: PreferenceDataset,
    launched_by: AbstractBaseUser | None,
    name: str = "",
    stage: str | None = None,
    adapter: str | None = None,
    reward_model: ModelArtifact | None = None,
    seed: int = 42,
    max_steps: int | None = None,
    epochs: float | None = None,
    settings: dict[str, Any] | None = None,
    stage_settings: dict[str, dict[str, Any]] | None = None,
    evaluate: bool = True,
) -> Comparison:
    """Check and queue a comparison: one round per variant, all or none.

    ``kind`` ``adapters`` runs ``stage`` once per adapter method in ``variants``; ``alignment``
    runs each stage in ``variants`` with the ``adapter`` method. Every variant gets ``seed`` and
    the budget (``max_steps``, else ``epochs``) and the shared ``settings``; ``stage_settings``
    apply to the variants that have that stage. One transaction: a variant that fails its round's
    checks raises ``TrainingError`` naming it, and no round of the comparison is kept.
    """
    settings, stage_settings = dict(settings or {}), dict(stage_settings or {})
    variants = _checked_variants(kind, variants, stage, adapter)
    _check_budget(max_steps, epochs)
    fixed = sorted(set(settings) & set(FIXED_SETTINGS))
    if fixed:
        raise TrainingError(
            f"{fixed[0]} is set by the comparison for every variant; set it in its own field.",
            {"settings": f"{fixed[0]} is the comparison's own field."},
        )
    shared = {**settings, "seed": seed, **({"max_steps": max_steps} if max_steps else {"epochs": epochs})}
    stages_of = {variant: stage if kind == Comparison.Kind.ADAPTERS else variant for variant in variants}
    named = set(stages_of.values()) | ({Stage.EVALUATE} if evaluate else set())
    for stage_name in stage_settings:
        if stage_name not in named:
            raise TrainingError(
                f"stage_settings names {stage_name!r}, which no variant runs.", {"stage_settings": stage_name}
            )
    label = stage if kind == Comparison.Kind.ADAPTERS else adapter
    name = (name or "").strip()[:200] or f"{label}: {', '.join(variants)} on {dataset.name}"[:200]
    with transaction.atomic():
        comparison = Comparison.objects.create(
            name=name,
            kind=kind,
            stage=stage if kind == Comparison.Kind.ADAPTERS else "",
            adapter=adapter if kind == Comparison.Kind.ALIGNMENT else "",
            variants=variants,
            base_model=base_model,
            dataset=dataset,
            reward_model=reward_model,
            seed=seed,
            max_steps=max_steps,
            epochs=None if max_steps else epochs,
            stage_settings={"shared": settings, "stages": stage_settings},
            launched_by=launched_by,
        )
        for variant in variants:
            variant_stage = stages_of[variant]
            try:
                round_ = round_launch(
                    name=f"{name} · {variant}"[:200],
                    preset=Round.Preset.SINGLE,
                    stage=variant_stage,
                    base_model=base_model,
                    dataset=dataset,
                    reward_model=reward_model,
                    launched_by=launched_by,
                    settings={**shared, "adapter": variant if kind == Comparison.Kind.ADAPTERS else adapter},
                    stage_settings={s: v for s, v in stage_settings.items() if s in (variant_stage, Stage.EVALUATE)},
                    evaluate=evaluate,
                )
            except TrainingError as error:
                # Raised inside the transaction: the comparison and the variants before this one go too.
                errors = {field: f"{variant}: {text}" for field, text in error.errors.items()}
                raise TrainingError(
                    f"Variant {variant}: {error.message}", {**errors, "variants": f"{variant}: {error.message}"}
                ) from None
            round_.comparison, round_.variant = comparison, variant
            round_.save(update_fields=["comparison", "variant"])
    return comparison


def _checked_variants(kind: str, variants: list[str], stage: str | None, adapter: str | None) -> list[str]:
    if kind == Comparison.Kind.ADAPTERS:
        offered = adapter_variants()
        if stage not in comparison_stages():
            raise TrainingError(
                "Choose the stage whose adapter methods to compare.",
                {"stage": f"One of {', '.join(comparison_stages())}."},
            )
    elif kind == Comparison.Kind.ALIGNMENT:
        offered = alignment_variants()
        if adapter not in adapter_variants():
            raise TrainingError(
                "Choose the adapter method every alignment variant trains with.",
                {"adapter": f"One of {', '.join(adapter_variants())}."},
            )
    else:
        raise TrainingError(f"Unknown kind {kind!r}.", {"kind": f"One of {', '.join(Comparison.Kind.values)}."})
    variants = list(dict.fromkeys(variants or []))  # a variant ticked twice is one variant
    unknown = [variant for variant in variants if variant not in offered]
    if unknown:
        raise TrainingError(
            f"Unknown variant {unknown[0]!r}.", {"variants": f"{unknown[0]!r} is not one of {', '.join(offered)}."}
        )
    if not 2 <= len(variants) <= MAX_VARIANTS:
        raise TrainingError(
            f"A comparison has 2 to {MAX_VARIANTS} variants; {len(variants)} chosen.",
            {"variants": f"Choose 2 to {MAX_VARIANTS}."},
        )
    return variants


def _check_budget(max_steps: int | None, epochs: float | None) -> None:
    """The same budget for every variant, said one way: a number of steps, or of epochs."""
    if (max_steps is None) == (epochs is None):
        raise TrainingError(
            "Give the budget every variant trains for: max_steps or epochs (one of them).",
            {"max_steps": "Set max_steps or epochs, not both." if max_steps else "This field or epochs is required."},
        )
    if max_steps is not None and max_steps < 1:
        raise TrainingError("max_steps must be at least 1.", {"max_steps": "Must be >= 1."})
    if epochs is not None and not epochs > 0:
        raise TrainingError("epochs must be more than 0.", {"epochs": "Must be > 0."})
