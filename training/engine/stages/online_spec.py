"""What the online RL stages (RLOO, GRPO) share: prompts in, completions sampled and scored by a reward model."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.engine.spec import TrainingSpec, check_model_dir, require


@dataclass
class OnlineRLSpec(TrainingSpec):
    """Sample ``num_generations`` completions per prompt, score them with a trained reward model, and
    push the policy towards those that score above the others of their prompt.

    ``batch_size`` counts completions, not prompts: each optimizer step sees
    ``batch_size * gradient_accumulation_steps / num_generations`` prompts.
    """

    reward_model: str = field(default="", metadata={"help": "local sequence-classification reward model"})
    reference_model: str | None = field(default=None, metadata={"help": "frozen KL reference; default: `model`"})
    num_generations: int = field(
        default=4, metadata={"help": "completions sampled per prompt (TRL: 2 RLOO, 8 GRPO; 4 keeps CPU steps short)"}
    )
    max_completion_length: int = field(
        default=64, metadata={"help": "new tokens per completion (TRL: 256-512; 64 keeps CPU steps short)"}
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (TRL default)"})
    beta: float = field(default=0.05, metadata={"help": "KL strength; 0: no reference model"})
    # TRL 1.12's default for both trainers, and 10x it for adapters (TRL's PEFT guide).
    default_learning_rates = {"full": 1e-6, "adapter": 1e-5}
    required_columns = (("prompt",), ("messages",))

    def check_fields(self) -> None:
        require(bool(self.reward_model), "reward_model", "is required")
        require(self.beta >= 0, "beta", "must be >= 0")
        require(self.num_generations >= 2, "num_generations", "must be >= 2 (completions are compared per prompt)")
        require(self.max_completion_length >= 1, "max_completion_length", "must be >= 1")
        require(self.temperature > 0, "temperature", "must be > 0")
        require(
            self.batch_size * self.gradient_accumulation_steps % self.num_generations == 0,
            "num_generations",
            "must divide batch_size * gradient_accumulation_steps (each step holds whole groups of completions)",
        )
        super().check_fields()

    def check_paths(self) -> None:
        check_model_dir(self.reward_model, "reward_model")
        if self.reference_model is not None:
            check_model_dir(self.reference_model, "reference_model")
        super().check_paths()
