"""Reward model: TRL RewardTrainer (Bradley-Terry) on chosen/rejected pairs, with `margin` when present."""

from __future__ import annotations

from typing import Any

from trl import RewardConfig, RewardTrainer

from training.engine import data, runner
from training.engine.adapters import apply_adapter
from training.engine.events import CancelFlag, EventStream
from training.engine.models import detect_device, load_reward_model, load_tokenizer
from training.engine.stages.reward_spec import RewardSpec


def run(spec: RewardSpec, events: EventStream, cancel: CancelFlag) -> dict[str, Any]:
    device = detect_device()
    train_rows, eval_rows = data.train_eval_split(spec.dataset, spec.eval_dataset, spec.eval_fraction, spec.seed)
    columns = ["prompt", "chosen", "rejected"] + (["margin"] if spec.use_margin else [])
    train_rows = train_rows.select_columns([c for c in columns if c in train_rows.column_names])
    if eval_rows is not None:
        eval_rows = eval_rows.select_columns([c for c in columns if c in eval_rows.column_names])
    tokenizer = load_tokenizer(spec.model, gguf_file=spec.gguf_file)
    quantize_4bit = spec.adapter.method == "qlora"
    model = load_reward_model(spec.model, device, gguf_file=spec.gguf_file, quantize_4bit=quantize_4bit)
    model.config.pad_token_id = tokenizer.pad_token_id
    model = apply_adapter(model, spec.adapter, task_type="SEQ_CLS")
    args = runner.training_arguments(
        spec,
        RewardConfig,
        device,
        has_eval=eval_rows is not None,
        max_length=spec.max_length,
        center_rewards_coefficient=spec.center_rewards_coefficient,
    )
    metrics = runner.fit(
        RewardTrainer,
        spec,
        events,
        cancel,
        model=model,
        args=args,
        tokenizer=tokenizer,
        train_rows=train_rows,
        eval_rows=eval_rows,
    )
    if "eval_accuracy" in metrics:
        metrics["eval_pairwise_accuracy"] = metrics["eval_accuracy"]
    return metrics
