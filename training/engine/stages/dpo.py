"""DPO: TRL DPOTrainer against a frozen reference; held-out reward accuracy and margins at the end."""

from __future__ import annotations

from typing import Any

from trl import DPOConfig, DPOTrainer

from training.engine import data, runner
from training.engine.adapters import apply_adapter
from training.engine.events import CancelFlag, EventStream
from training.engine.models import detect_device, frozen_reference, load_causal_lm, load_tokenizer
from training.engine.stages.dpo_spec import DPOSpec


def run(spec: DPOSpec, events: EventStream, cancel: CancelFlag) -> dict[str, Any]:
    device = detect_device()
    train_rows, eval_rows = data.train_eval_split(spec.dataset, spec.eval_dataset, spec.eval_fraction, spec.seed)
    train_rows = _preference_columns(train_rows)
    eval_rows = _preference_columns(eval_rows) if eval_rows is not None else None
    tokenizer = load_tokenizer(spec.model, gguf_file=spec.gguf_file)
    model = load_causal_lm(spec.model, device, gguf_file=spec.gguf_file, quantize_4bit=spec.adapter.method == "qlora")
    # Always hand over the reference: TRL would otherwise reload it from config._name_or_path, which
    # is wrong for a merged adapter or a GGUF file. Precomputed log-probs need no reference in memory.
    reference = None
    if spec.reference_model is not None or not spec.precompute_ref_log_probs:
        reference = frozen_reference(
            model, reference_path=spec.reference_model, method=spec.adapter.method, device=device
        )
    model = apply_adapter(model, spec.adapter, task_type="CAUSAL_LM")
    args = runner.training_arguments(
        spec,
        DPOConfig,
        device,
        has_eval=eval_rows is not None,
        max_length=spec.max_length,
        beta=spec.beta,
        loss_type=[spec.loss_type],
        label_smoothing=spec.label_smoothing,
        precompute_ref_log_probs=spec.precompute_ref_log_probs,
    )
    return runner.fit(
        DPOTrainer,
        spec,
        events,
        cancel,
        model=model,
        args=args,
        tokenizer=tokenizer,
        train_rows=train_rows,
        eval_rows=eval_rows,
        ref_model=reference,
    )


def _preference_columns(rows):
    return rows.select_columns([c for c in ("prompt", "chosen", "rejected") if c in rows.column_names])
