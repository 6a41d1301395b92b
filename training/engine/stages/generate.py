"""Generation: K sampled responses per prompt, written as a labeling import file (DESIGN.md).

Output: ``output_dir/candidates.jsonl``, one task per line:
``{"id", "prompt", "responses": [{"text", "model", "meta": {"temperature", "top_p"}}], "meta"}``.
The file appears only once complete.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from training.engine import data
from training.engine.events import CancelFlag, Cancelled, EventStream
from training.engine.models import detect_device, load_causal_lm, load_tokenizer
from training.engine.prompts import prompt_text
from training.engine.stages.generate_spec import GenerateSpec


def run(spec: GenerateSpec, events: EventStream, cancel: CancelFlag) -> dict[str, Any]:
    device = detect_device()
    rows = data.load_records(spec.prompts)
    progress = JobProgress(spec, len(rows), events)
    progress.report(0, new_tokens=0)  # the total before the model loads and the first batch (minutes) ends
    tokenizer = load_tokenizer(spec.model, gguf_file=spec.gguf_file)
    tokenizer.padding_side = "left"
    model = load_causal_lm(spec.model, device, gguf_file=spec.gguf_file)
    model.to("cuda" if device.cuda else "cpu").eval()
    model_name = spec.model_name or Path(spec.model).name
    # Candidates that share sampling settings are drawn in one generate call.
    settings = defaultdict(list)
    for index, setting in enumerate(zip(spec.per_candidate("temperature"), spec.per_candidate("top_p"), strict=True)):
        settings[setting].append(index)

    output = Path(spec.output_dir) / "candidates.jsonl"
    partial = output.with_suffix(".jsonl.partial")
    output.parent.mkdir(parents=True, exist_ok=True)
    new_tokens, written = 0, 0
    progress.begin()
    try:
        with partial.open("w") as out:
            for start in range(0, len(rows), spec.batch_size):
                if cancel.requested:
                    raise Cancelled(None)
                batch = rows[start : start + spec.batch_size]
                tasks, batch_tokens = candidate_tasks(model, tokenizer, batch, settings, model_name, spec)
                new_tokens += batch_tokens
                written += len(tasks)
                out.writelines(json.dumps(task) + "\n" for task in tasks)
                progress.report(start + len(batch), new_tokens=new_tokens)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(output)
    elapsed = time.monotonic() - progress.started
    return {
        "prompts": len(rows),
        "tasks": written,
        # Prompts whose candidates stayed empty after the retries are left out of the file.
        "prompts_left_out_empty": len(rows) - written,
        "responses": written * spec.num_candidates,
        "tokens_generated": new_tokens,
        "tokens_per_second": round(new_tokens / max(elapsed, 1e-9), 2),
        "output": str(output),
    }


class JobProgress:
    """Progress in prompts over the whole job: a job that runs several models over the same prompts
    counts on from the models before (``progress_offset``) towards one total (``progress_total``),
    so its progress never goes back. The time left comes from this run's rate, once it has one.
    """

    def __init__(self, spec: GenerateSpec, prompts: int, events: EventStream) -> None:
        self.offset, self.events = spec.progress_offset, events
        self.total = spec.progress_total if spec.progress_total is not None else spec.progress_offset + prompts
        self.started = time.monotonic()

    def begin(self) -> None:
        """Generation starts now: the rate leaves out loading the model."""
        self.started = time.monotonic()

    def report(self, done: int, *, new_tokens: int) -> None:
        """Emit a progress event after ``done`` of this run's prompts."""
        elapsed = time.monotonic() - self.started
        step = self.offset + done
        eta = round(elapsed / done * (self.total - step), 1) if done else None
        self.events.emit(
            "progress",
            step=step,
            total_steps=self.total,
            tokens_seen=new_tokens,
            elapsed_s=round(elapsed, 3),
            eta_s=eta,
        )


EMPTY_RETRIES = 3
# Control characters a model may emit (byte-level tokens) that no reviewer can read, and that
# databases refuse (NUL); tabs and line breaks stay.
UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def printable(text: str) -> str:
    return UNPRINTABLE.sub("", text)


def as_user_message(prompt: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


def candidate_tasks(model, tokenizer, batch: list[dict], settings: dict, model_name: str, spec: GenerateSpec):
    """Import-format tasks for a batch of prompt rows, and the number of tokens generated for them."""
    as_chat = spec.text_prompts_as_chat
    if as_chat is None:  # a chat model answers a bare question with end-of-turn at once
        as_chat = getattr(tokenizer, "has_own_chat_template", False)
    prompts = [as_user_message(row["prompt"]) if as_chat else row["prompt"] for row in batch]
    texts = [prompt_text(prompt, tokenizer) for prompt in prompts]
    # A chat template writes its own special tokens; a plain prompt gets the tokenizer's (e.g. BOS).
    add_special_tokens = isinstance(prompts[0], str)
    responses: list[list[dict | None]] = [[None] * spec.num_candidates for _ in texts]
    new_tokens = 0
    for (temperature, top_p), candidate_indices in settings.items():
        completions, count = sample(
            model, tokenizer, texts, add_special_tokens, len(candidate_indices), temperature, top_p, spec
        )
        new_tokens += count
        for row_responses, row_completions in zip(responses, completions, strict=True):
            for candidate, text in zip(candidate_indices, row_completions, strict=True):
                meta = {"temperature": temperature, "top_p": top_p}
                row_responses[candidate] = {"text": text, "model": model_name, "meta": meta}
    tasks = []
    for row, text, row_responses in zip(batch, texts, responses, strict=True):
        # The labeling import refuses empty responses: draw an empty candidate again, a few times,
        # and leave the prompt out if it stays empty.
        for response in row_responses:
            for _ in range(EMPTY_RETRIES):
                if response["text"].strip():
                    break
                temperature, top_p = response["meta"]["temperature"], response["meta"]["top_p"]
                completions, count = sample(model, tokenizer, [text], add_special_tokens, 1, temperature, top_p, spec)
                new_tokens += count
                response["text"] = completions[0][0]
        if not all(response["text"].strip() for response in row_responses):
            continue
        task = {"prompt": row["prompt"], "responses": row_responses, "meta": row.get("meta") or {}}
        tasks.append({"id": row["id"], **task} if row.get("id") is not None else task)
    return tasks, new_tokens


@torch.no_grad()
def sample(
    model,
    tokenizer,
    texts: list[str],
    add_special_tokens: bool,
    count: int,
    temperature: float,
    top_p: float,
    spec: GenerateSpec,
) -> tuple[list[list[str]], int]:
    """``count`` sampled completions per text, and the number of new tokens they hold (EOS and padding excluded)."""
    inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    inputs = inputs.to(model.device)
    generated = model.generate(
        **inputs,
        do_sample=True,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=spec.max_new_tokens,
        num_return_sequences=count,
        pad_token_id=tokenizer.pad_token_id,
    )
    new = generated[:, inputs["input_ids"].shape[1] :]
    special = torch.tensor(tokenizer.all_special_ids, device=new.device)
    token_count = int((~torch.isin(new, special)).sum())
    decoded = [printable(text) for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return [decoded[i * count : (i + 1) * count] for i in range(len(texts))], token_count
