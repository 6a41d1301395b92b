"""Continued pretraining: next-token loss on raw domain text, packed into max_length blocks."""

from __future__ import annotations

from typing import Any

from trl import SFTConfig, SFTTrainer

from training.engine import data, runner
from training.engine.adapters import apply_adapter
from training.engine.events import CancelFlag, EventStream
from training.engine.models import detect_device, load_causal_lm, load_tokenizer
from training.engine.stages.pretrain_spec import PretrainSpec


def run(spec: PretrainSpec, events: EventStream, cancel: CancelFlag) -> dict[str, Any]:
    device = detect_device()
    train_rows, eval_rows = data.train_eval_split(spec.dataset, spec.eval_dataset, spec.eval_fraction, spec.seed)
    text_field = "text" if data.is_text_source(spec.dataset) else spec.text_field
    train_rows = train_rows.select_columns([text_field])
    eval_rows = eval_rows.select_columns([text_field]) if eval_rows is not None else None
    tokenizer = load_tokenizer(spec.model, gguf_file=spec.gguf_file)
    model = load_causal_lm(spec.model, device, gguf_file=spec.gguf_file, quantize_4bit=spec.adapter.method == "qlora")
    model = apply_adapter(model, spec.adapter, task_type="CAUSAL_LM")
    args = runner.training_arguments(
        spec,
        SFTConfig,
        device,
        has_eval=eval_rows is not None,
        dataset_text_field=text_field,
        max_length=spec.max_length,
        # "wrapped": concatenate every document and cut max_length blocks, as in GPT-style pretraining;
        # nothing is truncated away and no attention mask across documents is needed.
        packing=True,
        packing_strategy="wrapped",
        completion_only_loss=False,
    )
    return runner.fit(
        SFTTrainer,
        spec,
        events,
        cancel,
        model=model,
        args=args,
        tokenizer=tokenizer,
        train_rows=train_rows,
        eval_rows=eval_rows,
    )
