"""The PPO stage's spec (``ppo.py`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.engine.spec import TrainingSpec, check_model_dir, require


@dataclass
class PPOSpec(TrainingSpec):
    """PPO (TRL 1.12 experimental) from an SFT policy, scored by a trained reward model."""

    reward_model: str = field(default="", metadata={"help": "local sequence-classification reward model"})
    value_model: str | None = field(default=None, metadata={"help": "value model init; default: reward_model"})
    reference_model: str | None = field(default=None, metadata={"help": "frozen KL reference; default: `model`"})
    kl_coef: float = field(default=0.05, metadata={"help": "KL penalty coefficient (TRL default)"})
    response_length: int = field(default=53, metadata={"help": "new tokens sampled per prompt (TRL default)"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature for rollouts"})
    num_ppo_epochs: int = field(default=4, metadata={"help": "PPO epochs per rollout batch"})
    num_mini_batches: int = field(default=1, metadata={"help": "mini-batches per PPO epoch"})
    missing_eos_penalty: float | None = field(default=None, metadata={"help": "subtracted when no EOS is sampled"})
    # TRL 1.12's PPOConfig default, and 10x it for adapters (TRL's PEFT guide).
    default_learning_rates = {"full": 3e-6, "adapter": 3e-5}
    required_columns = (("prompt",), ("messages",))

    def check_fields(self) -> None:
        require(bool(self.reward_model), "reward_model", "is required")
        require(self.kl_coef >= 0, "kl_coef", "must be >= 0")
        require(self.response_length >= 1, "response_length", "must be >= 1")
        require(self.temperature > 0, "temperature", "must be > 0")
        require(self.num_ppo_epochs >= 1, "num_ppo_epochs", "must be >= 1")
        require(self.num_mini_batches >= 1, "num_mini_batches", "must be >= 1")
        require(
            self.batch_size * self.gradient_accumulation_steps % self.num_mini_batches == 0,
            "num_mini_batches",
            "must divide batch_size * gradient_accumulation_steps",
        )
        super().check_fields()

    def check_paths(self) -> None:
        check_model_dir(self.reward_model, "reward_model")
        for name in ("value_model", "reference_model"):
            if getattr(self, name) is not None:
                check_model_dir(getattr(self, name), name)
        super().check_paths()
