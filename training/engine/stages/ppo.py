"""PPO (trl.experimental.ppo, TRL 1.12): an SFT policy, a frozen reference, a trained reward model,
and a value model initialised from the reward model.

TRL's PPO loop has no resume and ignores ``should_training_stop``: on cancel it saves a checkpoint
and the callback ends the run by raising ``Cancelled``.
"""

from __future__ import annotations

import os
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase
from trl.experimental.ppo import PPOConfig, PPOTrainer

from training.engine import data, runner
from training.engine.adapters import apply_adapter
from training.engine.events import CancelFlag, EventCallback, EventStream
from training.engine.models import detect_device, load_causal_lm, load_reward_model, load_tokenizer
from training.engine.spec import PPOSpec

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
    policy = apply_adapter(policy, spec.adapter, task_type="CAUSAL_LM")
    reference = None  # a PEFT policy's reference is its base with the adapter switched off
    if spec.reference_model is not None:
        reference = load_causal_lm(spec.reference_model, device)
    elif spec.adapter.method in ("full", "freeze"):
        reference = load_causal_lm(spec.model, device, gguf_file=spec.gguf_file)
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
    trainer = PPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=reference,
        reward_model=reward_model,
        value_model=value_model,
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        callbacks=[callback],
    )
    parameters = runner.count_parameters_of(trainer).as_event_fields()
    events.emit("metrics", step=0, **parameters)
    trainer.train()
    runner.save_final_model(trainer, tokenizer, spec)
    return {"global_step": trainer.state.global_step, **parameters, **last_logged(trainer.state.log_history)}


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
