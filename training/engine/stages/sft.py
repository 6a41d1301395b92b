"""SFT: prompt/completion or messages rows; loss on the completion (the last assistant turn) by default."""

from __future__ import annotations

from typing import Any

import datasets
from trl import SFTConfig, SFTTrainer

from training.engine import data, runner
from training.engine.adapters import apply_adapter
from training.engine.events import CancelFlag, EventStream
from training.engine.models import detect_device, load_causal_lm, load_tokenizer
from training.engine.stages.sft_spec import SFTSpec


def run(spec: SFTSpec, events: EventStream, cancel: CancelFlag) -> dict[str, Any]:
    device = detect_device()
    train_rows, eval_rows = data.train_eval_split(spec.dataset, spec.eval_dataset, spec.eval_fraction, spec.seed)
    train_rows = sft_rows(train_rows, spec)
    eval_rows = sft_rows(eval_rows, spec) if eval_rows is not None else None
    tokenizer = load_tokenizer(spec.model, gguf_file=spec.gguf_file)
    model = load_causal_lm(spec.model, device, gguf_file=spec.gguf_file, quantize_4bit=spec.adapter.method == "qlora")
    model = apply_adapter(model, spec.adapter, task_type="CAUSAL_LM")
    args = runner.training_arguments(
        spec,
        SFTConfig,
        device,
        has_eval=eval_rows is not None,
        max_length=spec.max_length,
        packing=spec.packing,
        completion_only_loss=spec.completion_only_loss,
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


def sft_rows(rows: datasets.Dataset, spec: SFTSpec) -> datasets.Dataset:
    """Keep the chosen sources; turn `messages` into a conversational prompt (all turns but the last) and completion."""
    if spec.sources is not None and "source" in rows.column_names:
        wanted = set(spec.sources)
        rows = rows.filter(lambda row: row["source"] in wanted)
    if "prompt" in rows.column_names and "completion" in rows.column_names:
        return rows.select_columns(["prompt", "completion"])
    return rows.map(_split_last_turn, remove_columns=rows.column_names)


def _split_last_turn(row: dict) -> dict:
    messages = row["messages"]
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("each `messages` row must end with an assistant turn (the completion to learn)")
    return {"prompt": messages[:-1], "completion": messages[-1:]}
