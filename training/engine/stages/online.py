"""What RLOO and GRPO share: TRL's online trainers, trained on prompts and scored by the round's reward model.

Both are ordinary Trainers: a cancel stops them at the end of a step with a checkpoint, and a run
resumes from one (weights, optimizer, scheduler, RNG) like SFT's. Each optimizer step samples
``num_generations`` completions per prompt with the policy, scores prompt + completion with the
reward model (its own tokenizer and chat template), and updates the policy.

The KL reference: TRL keeps none at ``beta`` 0, and uses a PEFT policy with its adapter switched
off; for any other policy it would load ``config._name_or_path`` again, which is the wrong model for
a merged adapter, a GGUF file or a bottleneck adapter. The engine hands over its own frozen copy.
"""

from __future__ import annotations

from typing import Any

import datasets

from training.engine import data, runner
from training.engine.adapters import apply_adapter
from training.engine.events import CancelFlag, EventStream
from training.engine.models import detect_device, frozen_reference, load_causal_lm, load_reward_model, load_tokenizer
from training.engine.stages.online_spec import OnlineRLSpec

# Logged by TRL's online trainers under these names; reported under the right-hand ones (as PPO's).
REPORTED_METRICS = {"reward": "mean_reward", "reward_std": "reward_std", "kl": "kl", "entropy": "entropy"}


def run_online(
    trainer_class: type, config_class: type, spec: OnlineRLSpec, events: EventStream, cancel: CancelFlag, **fields: Any
) -> dict[str, Any]:
    device = detect_device()
    train_rows, eval_rows = data.train_eval_split(spec.dataset, spec.eval_dataset, spec.eval_fraction, spec.seed)
    train_rows = prompt_rows(train_rows)
    eval_rows = prompt_rows(eval_rows) if eval_rows is not None else None
    tokenizer = load_tokenizer(spec.model, gguf_file=spec.gguf_file)
    tokenizer.padding_side = "left"  # generation continues from the right edge of the prompt
    policy = load_causal_lm(spec.model, device, gguf_file=spec.gguf_file, quantize_4bit=spec.adapter.method == "qlora")
    reference = None
    if spec.beta > 0:
        reference = frozen_reference(
            policy, reference_path=spec.reference_model, method=spec.adapter.method, device=device
        )
    policy = apply_adapter(policy, spec.adapter, task_type="CAUSAL_LM")
    reward_model = load_reward_model(spec.reward_model, device)
    reward_tokenizer = load_tokenizer(spec.reward_model)
    reward_model.config.pad_token_id = reward_tokenizer.pad_token_id
    reward_model.requires_grad_(False).eval()
    args = runner.training_arguments(
        spec,
        config_class,
        device,
        has_eval=eval_rows is not None,
        # Built without a reference (TRL would load one from config._name_or_path); ``ReferenceGiven``
        # sets beta and hands ours over.
        beta=0.0 if reference is not None else spec.beta,
        num_generations=spec.num_generations,
        max_completion_length=spec.max_completion_length,
        temperature=spec.temperature,
        **fields,
    )
    return runner.fit(
        with_reference(trainer_class),
        spec,
        events,
        cancel,
        model=policy,
        args=args,
        tokenizer=tokenizer,
        train_rows=train_rows,
        eval_rows=eval_rows,
        reward_funcs=[reward_model],
        reward_processing_classes=[reward_tokenizer],
        reference=reference,
        beta=spec.beta,
        report_logged=REPORTED_METRICS,
    )


def with_reference(trainer_class: type) -> type:
    """``trainer_class`` taking ``reference`` (a frozen model, or None) and the ``beta`` to train with."""

    class ReferenceGiven(trainer_class):
        def __init__(self, *args: Any, reference: Any, beta: float, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if reference is not None:
                self.beta = self.args.beta = beta
                self.ref_model = self.accelerator.prepare_model(reference, evaluation_mode=True)

    ReferenceGiven.__name__ = trainer_class.__name__
    return ReferenceGiven


def prompt_rows(rows: datasets.Dataset) -> datasets.Dataset:
    """One ``prompt`` column: text, or messages (a ``messages`` row's turns before its last)."""
    if "prompt" in rows.column_names:
        return rows.select_columns(["prompt"])
    return rows.map(lambda row: {"prompt": row["messages"][:-1]}, remove_columns=rows.column_names)
