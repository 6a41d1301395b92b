"""KTO: TRL KTOTrainer on prompt/completion/label rows (a KTO snapshot, or pairs split into their two halves)."""

from __future__ import annotations

from typing import Any

import datasets
from trl import KTOConfig, KTOTrainer

from training.engine import data, runner
from training.engine.adapters import apply_adapter
from training.engine.events import CancelFlag, EventStream
from training.engine.models import detect_device, frozen_reference, load_causal_lm, load_tokenizer
from training.engine.stages.kto_spec import KTOSpec


def run(spec: KTOSpec, events: EventStream, cancel: CancelFlag) -> dict[str, Any]:
    device = detect_device()
    train_rows, eval_rows = data.train_eval_split(spec.dataset, spec.eval_dataset, spec.eval_fraction, spec.seed)
    train_rows = kto_rows(train_rows)
    eval_rows = kto_rows(eval_rows) if eval_rows is not None else None
    tokenizer = load_tokenizer(spec.model, gguf_file=spec.gguf_file)
    model = load_causal_lm(spec.model, device, gguf_file=spec.gguf_file, quantize_4bit=spec.adapter.method == "qlora")
    # Handed over, as in DPO: TRL would otherwise reload the reference from config._name_or_path.
    reference = None
    if spec.reference_model is not None or not spec.precompute_ref_log_probs:
        reference = frozen_reference(
            model, reference_path=spec.reference_model, method=spec.adapter.method, device=device
        )
    model = apply_adapter(model, spec.adapter, task_type="CAUSAL_LM")
    args = runner.training_arguments(
        spec,
        KTOConfig,
        device,
        has_eval=eval_rows is not None,
        max_length=spec.max_length,
        beta=spec.beta,
        loss_type=spec.loss_type,
        desirable_weight=spec.desirable_weight,
        undesirable_weight=spec.undesirable_weight,
        precompute_ref_log_probs=spec.precompute_ref_log_probs,
    )
    return runner.fit(
        KTOTrainer,
        spec,
        events,
        cancel,
        model=model,
        args=args,
        tokenizer=tokenizer,
        train_rows=train_rows,
        eval_rows=eval_rows,
        ref_model=reference,
        report_logged={"rewards/margins": "reward_margin", "kl": "kl"},
    )


def kto_rows(rows: datasets.Dataset) -> datasets.Dataset:
    """prompt/completion/label, the label a bool; both kinds of example must be there."""
    rows = rows.select_columns(["prompt", "completion", "label"])
    labels = rows["label"]
    if any(not isinstance(label, bool) for label in labels):
        raise ValueError("`label` must be true (desirable) or false (undesirable) in every row")
    if all(labels) or not any(labels):
        kind = "desirable" if all(labels) else "undesirable"
        raise ValueError(f"every row is {kind}: KTO needs both desirable and undesirable examples")
    return rows
