"""Held-out evaluation.

Reward model (``kind: reward``): pairwise accuracy and mean margin on preference pairs.
Policy (``kind: policy``), each part when its data is given:

- ``preferences``: log-probability margin of chosen over rejected responses, and how often it is positive;
- ``prompts``: mean reward-model score of greedy answers, and the win rate against ``reference_model``;
- ``perplexity_texts``: perplexity, and the reference's, to catch forgetting.

Every ``reference_*`` figure is the same measure taken on ``reference_model`` (the model before training).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.engine import data
from training.engine.events import CancelFlag, Cancelled, EventStream
from training.engine.models import Device, detect_device, load_causal_lm, load_reward_model, load_tokenizer
from training.engine.prompts import Prompt, conversation_text, prompt_text
from training.engine.spec import EvaluateSpec


def run(spec: EvaluateSpec, events: EventStream, cancel: CancelFlag) -> dict[str, Any]:
    device = detect_device()
    metrics = reward_model_metrics(spec, device) if spec.kind == "reward" else policy_metrics(spec, device, cancel)
    events.emit("eval", **metrics)
    return metrics


def reward_model_metrics(spec: EvaluateSpec, device: Device) -> dict[str, Any]:
    tokenizer = load_tokenizer(spec.model, gguf_file=spec.gguf_file)
    model = _ready(load_reward_model(spec.model, device, gguf_file=spec.gguf_file), device)
    pairs = data.load_rows(spec.preferences)
    chosen = reward_scores(model, tokenizer, pairs["prompt"], pairs["chosen"], spec)
    rejected = reward_scores(model, tokenizer, pairs["prompt"], pairs["rejected"], spec)
    margins = chosen - rejected
    return {
        "pairs": len(pairs),
        "pairwise_accuracy": (margins > 0).float().mean().item(),
        "mean_margin": margins.mean().item(),
    }


def policy_metrics(spec: EvaluateSpec, device: Device, cancel: CancelFlag) -> dict[str, Any]:
    tokenizer = load_tokenizer(spec.model, gguf_file=spec.gguf_file)
    models = {"": _ready(load_causal_lm(spec.model, device, gguf_file=spec.gguf_file), device)}
    if spec.reference_model is not None:
        models["reference_"] = _ready(load_causal_lm(spec.reference_model, device), device)
    metrics: dict[str, Any] = {}
    if spec.preferences is not None:
        pairs = data.load_rows(spec.preferences)
        for prefix, model in models.items():
            margins = preference_margins(model, tokenizer, pairs, spec)
            metrics[f"{prefix}logprob_margin"] = margins.mean().item()
            metrics[f"{prefix}preference_accuracy"] = (margins > 0).float().mean().item()
    _stop_if_cancelled(cancel)
    if spec.prompts is not None:
        prompts = [row["prompt"] for row in data.load_records(spec.prompts)]
        reward_tokenizer = load_tokenizer(spec.reward_model)
        reward_model = _ready(load_reward_model(spec.reward_model, device), device)
        scores = {}
        for prefix, model in models.items():
            answers = greedy_answers(model, tokenizer, prompts, spec)
            scores[prefix] = reward_scores(reward_model, reward_tokenizer, prompts, answers, spec)
            metrics[f"{prefix}mean_reward"] = scores[prefix].mean().item()
            _stop_if_cancelled(cancel)
        if "reference_" in scores:
            wins = (scores[""] > scores["reference_"]).float() + 0.5 * (scores[""] == scores["reference_"]).float()
            metrics["win_rate"] = wins.mean().item()
    if spec.perplexity_texts is not None:
        texts = data.load_rows(spec.perplexity_texts)["text"]
        for prefix, model in models.items():
            metrics[f"{prefix}perplexity"] = perplexity(model, tokenizer, texts, spec)
    return metrics


@torch.no_grad()
def reward_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    responses: Sequence[Prompt],
    spec: EvaluateSpec,
) -> torch.Tensor:
    """The reward model's scalar for each prompt + response, rendered as TRL's RewardTrainer renders it."""
    texts = [conversation_text(p, r, tokenizer) for p, r in zip(prompts, responses, strict=True)]
    scores = []
    for batch in _batches(texts, spec.batch_size):
        # The rendered text already holds the special tokens TRL's tokenization puts there.
        inputs = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=spec.max_length)
        inputs = inputs.to(model.device)
        scores.append(model(**inputs).logits[:, 0].float().cpu())
    return torch.cat(scores)


@torch.no_grad()
def preference_margins(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs, spec: EvaluateSpec):
    """log p(chosen | prompt) - log p(rejected | prompt) for each pair, summed over response tokens."""
    chosen = response_logprobs(model, tokenizer, pairs["prompt"], pairs["chosen"], spec)
    rejected = response_logprobs(model, tokenizer, pairs["prompt"], pairs["rejected"], spec)
    return chosen - rejected


def response_logprobs(model, tokenizer, prompts, responses, spec: EvaluateSpec) -> torch.Tensor:
    sequences = [
        _prompt_and_response_ids(prompt, response, tokenizer, spec.max_length)
        for prompt, response in zip(prompts, responses, strict=True)
    ]
    totals = []
    for batch in _batches(sequences, spec.batch_size):
        log_probs, mask = _token_log_probs(model, tokenizer, batch)
        totals.append((log_probs * mask).sum(dim=1).cpu())
    return torch.cat(totals)


@torch.no_grad()
def perplexity(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], spec: EvaluateSpec):
    """exp(mean negative log-likelihood per token) over all texts, each cut to max_length tokens."""
    sequences = [(0, tokenizer(text)["input_ids"][: spec.max_length]) for text in texts]
    total_nll, total_tokens = 0.0, 0
    for batch in _batches(sequences, spec.batch_size):
        log_probs, mask = _token_log_probs(model, tokenizer, batch)
        total_nll -= (log_probs * mask).sum().item()
        total_tokens += int(mask.sum().item())
    return math.exp(total_nll / max(total_tokens, 1))


@torch.no_grad()
def greedy_answers(model, tokenizer, prompts: Sequence[Prompt], spec: EvaluateSpec) -> list[str]:
    tokenizer.padding_side = "left"
    answers = []
    for batch in _batches(list(prompts), spec.batch_size):
        texts = [prompt_text(prompt, tokenizer) for prompt in batch]
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=isinstance(batch[0], str))
        inputs = inputs.to(model.device)
        generated = model.generate(
            **inputs, do_sample=False, max_new_tokens=spec.max_new_tokens, pad_token_id=tokenizer.pad_token_id
        )
        answers += tokenizer.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    tokenizer.padding_side = "right"
    return answers


def _prompt_and_response_ids(prompt: Prompt, response: Prompt, tokenizer, max_length: int) -> tuple[int, list[int]]:
    """(number of prompt tokens, prompt + response ids), tokenized the way TRL's DPOTrainer does."""
    if isinstance(prompt, str) and isinstance(response, str):
        prompt_ids = tokenizer(prompt)["input_ids"]
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    else:
        prompt_ids = tokenizer(prompt_text(prompt, tokenizer), add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(conversation_text(prompt, response, tokenizer), add_special_tokens=False)["input_ids"]
        response_ids = full_ids[len(prompt_ids) :]
    ids = (prompt_ids + response_ids)[:max_length]
    return min(len(prompt_ids), len(ids)), ids


def _token_log_probs(model, tokenizer, batch: list[tuple[int, list[int]]]):
    """Per-position log-probs of each next token, and a mask of the positions that count (response, not padding)."""
    width = max(len(ids) for _, ids in batch)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for _, ids in batch], device=model.device)
    attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for _, ids in batch], device=model.device)
    logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
    targets = input_ids[:, 1:]
    log_probs = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    positions = torch.arange(1, width, device=model.device).unsqueeze(0)
    starts = torch.tensor([max(start, 1) for start, _ in batch], device=model.device).unsqueeze(1)
    mask = (positions >= starts) & attention[:, 1:].bool()
    return log_probs, mask.float()


def _ready(model: PreTrainedModel, device: Device) -> PreTrainedModel:
    return model.to("cuda" if device.cuda else "cpu").eval()


def _batches(items: Sequence, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _stop_if_cancelled(cancel: CancelFlag) -> None:
    if cancel.requested:
        raise Cancelled(None)
