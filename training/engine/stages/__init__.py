"""The engine's stages: one table, read by the engine's command line and by the web app.

A stage is a spec dataclass (``<stage>_spec.py``, light: the web app imports it) and a module with
``run(spec, events, cancel) -> metrics`` (``<stage>.py``, which imports torch and TRL, loaded only
when the stage runs). Adding a stage means its two modules and one row here.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from training.engine.spec import ModelSource, SpecError, spec_from_dict
from training.engine.stages.dpo_spec import DPOSpec
from training.engine.stages.evaluate_spec import EvaluateSpec
from training.engine.stages.generate_spec import GenerateSpec
from training.engine.stages.grpo_spec import GRPOSpec
from training.engine.stages.kto_spec import KTOSpec
from training.engine.stages.ppo_spec import PPOSpec
from training.engine.stages.pretrain_spec import PretrainSpec
from training.engine.stages.reward_spec import RewardSpec
from training.engine.stages.rloo_spec import RLOOSpec
from training.engine.stages.sft_spec import SFTSpec

# What a round gives a stage to train on: pairs, demonstrations and labelled completions (KTO's
# desirable/undesirable rows) come from a dataset snapshot, prompts from a snapshot's distinct
# prompts, text from a local text dataset.
TrainsOn = Literal["preference_pairs", "demonstrations", "labelled_completions", "prompts", "text"]


@dataclass(frozen=True)
class Stage:
    name: str
    label: str  # for people, e.g. a stage column
    noun: str  # in a sentence: "the default for {noun} with LoRA"
    spec: type[ModelSource]
    makes: Literal["policy", "reward_model"] | None  # what its output model is
    trains_on: TrainsOn | None  # None: it trains nothing
    in_rounds: bool = True  # a stage a round can hold (generation runs as its own job)

    def run(self, spec: ModelSource, events: Any, cancel: Any) -> dict[str, Any]:
        module = importlib.import_module(f"training.engine.stages.{self.name}")
        return module.run(spec, events, cancel)

    def has_field(self, name: str) -> bool:
        return name in self.spec.__dataclass_fields__

    @property
    def reads_snapshot(self) -> bool:
        """It trains on rows of a dataset snapshot (pairs, demonstrations, labelled completions or prompts)."""
        return self.trains_on in ("preference_pairs", "demonstrations", "labelled_completions", "prompts")

    @property
    def needs_reward_model(self) -> bool:
        """It trains against a reward model (PPO, RLOO, GRPO)."""
        return self.trains_on is not None and self.has_field("reward_model")


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("pretrain", "Continued pretraining", "pretraining", PretrainSpec, makes="policy", trains_on="text"),
        Stage("sft", "Supervised fine-tuning", "SFT", SFTSpec, makes="policy", trains_on="demonstrations"),
        Stage(
            "reward", "Reward model", "the reward model", RewardSpec, makes="reward_model", trains_on="preference_pairs"
        ),
        Stage("dpo", "DPO", "DPO", DPOSpec, makes="policy", trains_on="preference_pairs"),
        Stage("kto", "KTO", "KTO", KTOSpec, makes="policy", trains_on="labelled_completions"),
        Stage("ppo", "PPO", "PPO", PPOSpec, makes="policy", trains_on="prompts"),
        Stage("rloo", "RLOO", "RLOO", RLOOSpec, makes="policy", trains_on="prompts"),
        Stage("grpo", "GRPO", "GRPO", GRPOSpec, makes="policy", trains_on="prompts"),
        Stage("evaluate", "Evaluation", "evaluation", EvaluateSpec, makes=None, trains_on=None),
        Stage("generate", "Generation", "generation", GenerateSpec, makes=None, trains_on=None, in_rounds=False),
    )
}


def stage_names(*, makes: str | None = None, trains_on: str | None = None) -> list[str]:
    """The stages that make that kind of model, or train on that kind of data (for queries by stage)."""
    return [
        name
        for name, stage in STAGES.items()
        if (makes is None or stage.makes == makes) and (trains_on is None or stage.trains_on == trains_on)
    ]


def load_spec(source: str | Path | dict[str, Any], *, check_paths: bool = True) -> ModelSource:
    """Read a spec from a JSON file or a dict, check it, and return its stage's dataclass.

    ``check_paths=False`` runs the field checks only (no I/O): what the web app can check before
    the models and files a stage will use exist.
    """
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
    name = raw.pop("stage", None)
    if name not in STAGES:
        raise SpecError(f"stage: must be one of {', '.join(STAGES)}, got {name!r}")
    spec = spec_from_dict(STAGES[name].spec, raw)
    spec.check_fields()
    if check_paths:
        spec.check_paths()
    return spec


def spec_to_dict(spec: ModelSource) -> dict[str, Any]:
    """The spec as JSON-ready data, with its ``stage`` key, as written to ``spec.json``."""
    return {"stage": stage_of(spec).name, **asdict(spec)}


def stage_of(spec: ModelSource) -> Stage:
    return next(stage for stage in STAGES.values() if type(spec) is stage.spec)
