"""What every training stage shares: TrainingArguments from a spec, the train call, and the outputs.

Output directory layout::

    output_dir/
      spec.json          the spec as run
      checkpoints/       checkpoint-<step>/ (model or adapter, optimizer, scheduler, RNG, trainer state)
      model/             final model (full weights, PEFT or bottleneck adapter, or merged adapter) and
                         tokenizer, safetensors
      metrics.json       final metrics
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase, Trainer

from training.engine import bottleneck
from training.engine.adapters import ParameterCounts, count_parameters
from training.engine.checkpoints import complete_checkpoints
from training.engine.events import CancelFlag, Cancelled, EventCallback, EventStream
from training.engine.models import Device
from training.engine.spec import TrainingSpec

# Without a logging_steps, metrics come every 1% of the run's optimizer steps (so every step of a
# run of 100 steps or fewer): the Trainer turns a fraction below 1 into ceil(max_steps * fraction)
# once it knows max_steps (TrainerState.compute_steps), which only the dataloader tells when the
# run is given in epochs.
LOGGING_FRACTION_OF_RUN = 0.01


def checkpoints_dir(spec: TrainingSpec) -> Path:
    return Path(spec.output_dir) / "checkpoints"


def final_model_dir(output_dir: str) -> Path:
    return Path(output_dir) / "model"


def training_arguments(spec: TrainingSpec, config_class: type, device: Device, *, has_eval: bool, **stage_fields):
    """A TRL config for ``spec``: the spec's fields, plus device settings nobody should have to write.

    On CPU, TRL's defaults of bf16 and gradient checkpointing are switched off (both slow it down).
    """
    gradient_checkpointing = device.cuda if spec.gradient_checkpointing is None else spec.gradient_checkpointing
    periodic_eval = has_eval and spec.eval_steps is not None
    return config_class(
        output_dir=str(checkpoints_dir(spec)),
        max_steps=spec.max_steps,
        num_train_epochs=spec.epochs,
        per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.batch_size,
        gradient_accumulation_steps=spec.gradient_accumulation_steps,
        learning_rate=spec.learning_rate,
        lr_scheduler_type=spec.lr_scheduler,
        warmup_steps=spec.warmup_steps,
        weight_decay=spec.weight_decay,
        max_grad_norm=spec.max_grad_norm,
        seed=spec.seed,
        data_seed=spec.seed,
        logging_steps=logging_interval(spec),
        logging_first_step=True,
        save_strategy="steps",
        save_steps=spec.save_steps,
        save_total_limit=spec.save_total_limit,
        eval_strategy="steps" if periodic_eval else "no",
        eval_steps=spec.eval_steps if periodic_eval else None,
        use_cpu=not device.cuda,
        bf16=device.bf16,
        activation_checkpointing=gradient_checkpointing,  # its name since transformers 5.23
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        **stage_fields,
    )


def logging_interval(spec: TrainingSpec) -> float:
    """Steps between metrics events as the Trainer takes them: the spec's count, or a fraction of the run."""
    return spec.logging_steps if spec.logging_steps is not None else LOGGING_FRACTION_OF_RUN


def resume_checkpoint(spec: TrainingSpec) -> str | None:
    """The checkpoint ``resume_from`` names: a directory, or 'latest' (None when there is none yet).

    'latest' is the newest complete checkpoint: the Trainer writes ``trainer_state.json`` last, so a
    checkpoint cut short (the machine went down while saving) has none and is passed over.
    """
    if spec.resume_from != "latest":
        return spec.resume_from
    found = complete_checkpoints(checkpoints_dir(spec))
    return str(found[-1][1]) if found else None


def train(
    trainer: Trainer, spec: TrainingSpec, events: EventStream, callback: EventCallback, *, has_eval: bool
) -> dict[str, Any]:
    """Train (resuming if asked), evaluate on the held-out set, save the final model; return final metrics.

    Raises Cancelled, after a checkpoint is written, when a cancel arrived during training.
    """
    parameters = count_parameters_of(trainer).as_event_fields()
    events.emit("metrics", step=0, **parameters)
    checkpoint = resume_checkpoint(spec)
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.monotonic() - started
    if callback.cancelled:
        raise Cancelled(callback.last_checkpoint)
    metrics: dict[str, Any] = {"train_loss": result.training_loss, "global_step": result.global_step, **parameters}
    metrics.update({k: v for k, v in result.metrics.items() if k.startswith("train_")})
    metrics.update(cost_figures(seconds=seconds, steps=callback.steps_run, tokens=callback.tokens_run))
    if has_eval:
        metrics.update(trainer.evaluate())
    return metrics


def fit(
    trainer_class: type[Trainer],
    spec: TrainingSpec,
    events: EventStream,
    cancel: CancelFlag,
    *,
    model: Any,
    args: Any,
    tokenizer: PreTrainedTokenizerBase,
    train_rows: Any,
    eval_rows: Any | None,
    report_logged: dict[str, str] | None = None,
    **trainer_fields: Any,
) -> dict[str, Any]:
    """A stage's TRL trainer with the event callback: train (or resume), save the final model, return the metrics.

    ``report_logged`` maps names the trainer logs to names in the final metrics (the last value logged).
    """
    callback = EventCallback(events, cancel)
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        processing_class=tokenizer,
        callbacks=[callback],
        **trainer_fields,
    )
    metrics = train(trainer, spec, events, callback, has_eval=eval_rows is not None)
    metrics.update(last_logged(trainer.state.log_history, report_logged or {}))
    save_final_model(trainer, tokenizer, spec)
    return metrics


def last_logged(history: list[dict[str, Any]], names: dict[str, str]) -> dict[str, Any]:
    """The last value the trainer logged under each of ``names``' keys, under its value."""
    found = {}
    for entry in history:
        for logged, name in names.items():
            if logged in entry:
                found[name] = entry[logged]
    return found


def cost_figures(*, seconds: float, steps: int, tokens: int) -> dict[str, float | int]:
    """What a stage's training cost, under the names the run pages and comparisons read.

    ``peak_memory_bytes``: on CUDA the most memory torch held for tensors (max_memory_allocated);
    on CPU the process's peak resident set (getrusage; it includes the interpreter and libraries).
    ``train_seconds_per_step``: wall time of the train call per optimizer step this process ran
    (a resumed run counts only its own steps). ``train_tokens_per_second`` only when the trainer
    counts tokens (TRL's ``num_tokens``): input tokens, padding excluded, per second of training.
    """
    figures: dict[str, float | int] = {"peak_memory_bytes": peak_memory_bytes()}
    if steps > 0:
        figures["train_seconds_per_step"] = round(seconds / steps, 6)
    if tokens > 0 and seconds > 0:
        figures["train_tokens_per_second"] = round(tokens / seconds, 3)
    return figures


def peak_memory_bytes() -> int:
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    # Linux reports ru_maxrss in KiB (macOS in bytes; the engine runs on Linux).
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def count_parameters_of(trainer: Trainer) -> ParameterCounts:
    model = trainer.model
    if hasattr(model, "get_nb_trainable_parameters"):  # PEFT counts packed 4-bit weights correctly
        trainable, total = model.get_nb_trainable_parameters()
        return ParameterCounts(trainable=trainable, total=total)
    return count_parameters(model)


def save_final_model(trainer: Trainer, tokenizer: PreTrainedTokenizerBase, spec: TrainingSpec) -> Path:
    """Write the trained model (adapter, merged adapter or full weights) and the tokenizer to output_dir/model."""
    target = final_model_dir(spec.output_dir)
    if spec.adapter.method == "bottleneck":
        model = trainer.accelerator.unwrap_model(trainer.model)
        model = getattr(model, "policy", model)  # PPO wraps policy and value; keep the policy
        if trainer.accelerator.is_main_process:
            bottleneck.save(model, target, base_model=spec.model)
    elif spec.adapter.merge:
        model = trainer.accelerator.unwrap_model(trainer.model)
        model = getattr(model, "policy", model).merge_and_unload()  # PPO wraps policy and value; keep the policy
        if trainer.accelerator.is_main_process:
            model.save_pretrained(target)
    else:
        trainer.save_model(str(target))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(target)
    return target


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
