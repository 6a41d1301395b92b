"""PPO (trl.experimental.ppo, TRL 1.12): an SFT policy, a frozen reference, a trained reward model,
and a value model initialised from the reward model.

TRL's PPO loop ignores ``should_training_stop``: on cancel it saves a checkpoint and the callback
ends the run by raising ``Cancelled``. It has no resume either, and its checkpoints hold only the
policy; ``ResumablePPOTrainer`` adds the value model to each checkpoint and starts a run from one:
weights, optimizer, scheduler, step count, the position in the data, and the random state.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import datasets
import torch
from safetensors.torch import load_file
from transformers import PreTrainedTokenizerBase, TrainerCallback, TrainerControl, TrainerState
from trl.experimental.ppo import PPOConfig, PPOTrainer

from training.engine import data, runner
from training.engine.adapters import apply_adapter
from training.engine.events import CancelFlag, EventCallback, EventStream
from training.engine.models import (
    detect_device,
    frozen_reference,
    load_causal_lm,
    load_reward_model,
    load_tokenizer,
)
from training.engine.stages.ppo_spec import PPOSpec

# Inside each checkpoint, beside the policy TRL saves.
VALUE_MODEL_DIR = "value_model"
# Logged by TRL's PPO loop under these names; reported under the right-hand ones.
REPORTED_METRICS = {
    "objective/scores": "mean_reward",
    "objective/kl": "kl",
    "loss/value_avg": "value_loss",
    "loss/policy_avg": "policy_loss",
    "objective/rlhf_reward": "rlhf_reward",
    "objective/entropy": "entropy",
}


def run(spec: PPOSpec, events: EventStream, cancel: CancelFlag) -> dict[str, Any]:
    device = detect_device()
    train_rows, eval_rows = data.train_eval_split(spec.dataset, spec.eval_dataset, spec.eval_fraction, spec.seed)
    tokenizer = load_tokenizer(spec.model, gguf_file=spec.gguf_file)
    tokenizer.padding_side = "left"  # generation continues from the right edge of the prompt
    train_rows = tokenized_prompts(train_rows, tokenizer, spec.max_length)
    eval_rows = tokenized_prompts(eval_rows, tokenizer, spec.max_length) if eval_rows is not None else train_rows

    policy = load_causal_lm(spec.model, device, gguf_file=spec.gguf_file, quantize_4bit=spec.adapter.method == "qlora")
    reference = frozen_reference(policy, reference_path=spec.reference_model, method=spec.adapter.method, device=device)
    policy = apply_adapter(policy, spec.adapter, task_type="CAUSAL_LM")
    reward_model = load_reward_model(spec.reward_model, device)
    value_model = load_reward_model(spec.value_model or spec.reward_model, device)
    for model in (reward_model, value_model):
        model.config.pad_token_id = tokenizer.pad_token_id
    reward_model.requires_grad_(False)

    rollouts_per_step = spec.batch_size * spec.gradient_accumulation_steps * _world_size()
    args = runner.training_arguments(
        spec,
        PPOConfig,
        device,
        has_eval=False,
        total_episodes=spec.max_steps * rollouts_per_step if spec.max_steps > 0 else None,
        kl_coef=spec.kl_coef,
        response_length=spec.response_length,
        temperature=spec.temperature,
        num_ppo_epochs=spec.num_ppo_epochs,
        num_mini_batches=spec.num_mini_batches,
        missing_eos_penalty=spec.missing_eos_penalty,
        stop_token="eos",  # noqa: S106 - a token name, not a password
        num_sample_generations=0,
        sft_model_path=spec.model,
        reward_model_path=spec.reward_model,
    )
    callback = EventCallback(events, cancel, raise_on_cancel=True)
    trainer = ResumablePPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=reference,
        reward_model=reward_model,
        value_model=value_model,
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        callbacks=[callback],
        resume_from=runner.resume_checkpoint(spec),
    )
    parameters = runner.count_parameters_of(trainer).as_event_fields()
    events.emit("metrics", step=0, **parameters)
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started
    runner.save_final_model(trainer, tokenizer, spec)
    cost = runner.cost_figures(seconds=seconds, steps=callback.steps_run, tokens=callback.tokens_run)
    return {"global_step": trainer.state.global_step, **parameters, **last_logged(trainer.state.log_history), **cost}


class ResumablePPOTrainer(PPOTrainer):
    """TRL's PPO trainer, with the value model saved in each checkpoint and a start from a checkpoint."""

    def __init__(self, *args: Any, resume_from: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume_from = resume_from

    def _save_checkpoint(self, model, trial) -> None:
        # Before the rest: the Trainer writes trainer_state.json last, the mark of a complete checkpoint.
        checkpoint = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        if self.args.should_save:
            value_model = self.accelerator.unwrap_model(self.model).value_model
            value_model.save_pretrained(checkpoint / VALUE_MODEL_DIR, safe_serialization=True)
        super()._save_checkpoint(model, trial)

    def train(self) -> None:
        if self.resume_from is None:
            return super().train()
        checkpoint = self.resume_from
        done = json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"]
        wrapper = self.accelerator.unwrap_model(self.model)
        self._load_from_checkpoint(checkpoint, model=wrapper.policy)
        value_weights = load_file(Path(checkpoint) / VALUE_MODEL_DIR / "model.safetensors")
        wrapper.value_model.load_state_dict(value_weights)
        # (Trainer's own loader needs attributes TRL's PPO trainer never sets.)
        device = self.accelerator.device
        self.optimizer.load_state_dict(
            torch.load(Path(checkpoint) / "optimizer.pt", map_location=device, weights_only=True)
        )
        self.lr_scheduler.load_state_dict(torch.load(Path(checkpoint) / "scheduler.pt", weights_only=True))
        total = self.args.num_total_batches
        # The loop runs the remaining updates; the counters continue from the checkpoint's, and the
        # random state is restored once the data is back where it was (skipping reshuffles it).
        self.args.num_total_batches = total - done
        self.dataloader = _SkipBatches(self.dataloader, done, then=lambda: self._load_rng_state(checkpoint))
        self.callback_handler.callbacks.insert(0, _ContinueFrom(done, total))
        try:
            return super().train()
        finally:
            self.args.num_total_batches = total


class _SkipBatches:
    """A data loader whose first pass starts ``count`` batches in (over as many passes as needed)."""

    def __init__(self, dataloader: Any, count: int, *, then: Callable[[], None]) -> None:
        self.dataloader, self.count, self.then = dataloader, count, then

    def __iter__(self) -> Iterator[Any]:
        if self.count == 0:
            yield from self.dataloader
            return
        left, self.count = self.count, 0
        while left:
            batches = iter(self.dataloader)
            for batch in batches:
                if left:
                    left -= 1
                    if left == 0:
                        self.then()
                    continue
                yield batch
            if not left:
                return

    def __len__(self) -> int:
        return len(self.dataloader)


class _ContinueFrom(TrainerCallback):
    """Puts the step count (and the episode count TRL derives from it) back where the checkpoint was."""

    def __init__(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def on_train_begin(self, args, state: TrainerState, control: TrainerControl, **_: Any):
        state.global_step = self.done
        state.episode = self.done * args.batch_size
        state.max_steps = self.total
        return control


def tokenized_prompts(rows: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int):
    """``input_ids`` of each prompt (messages through the chat template), keeping the last max_length tokens."""

    def tokenize(row: dict) -> dict:
        prompt = row["prompt"] if "prompt" in row else row["messages"]
        if isinstance(prompt, list):
            ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
        else:
            ids = tokenizer(prompt)["input_ids"]
        return {"input_ids": list(ids)[-max_length:]}

    return rows.map(tokenize, remove_columns=rows.column_names)


def last_logged(history: list[dict]) -> dict[str, float]:
    """The last value TRL logged for each reported metric, under the engine's names."""
    found = {}
    for entry in history:
        for trl_name, name in REPORTED_METRICS.items():
            if trl_name in entry:
                found[name] = entry[trl_name]
    return found


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))
