"""Held-out evaluation: the figures of a verdict, each over the whole held-out set, with a 95% interval.

Reward model (``kind: reward``): pairwise accuracy on ``preferences`` against chance, and by the
agreement level of the human votes (the ``agreement`` column) when the rows carry it.

Policy (``kind: policy``), each part when its data is given, on ``model`` and on ``reference_model``
(the model before training) over the same items:

- ``preferences``: how often the log-probability of the chosen response beats the rejected one's
  (agreement with held-out human preferences), and the mean margin; with a ``reward_model``, also
  that reward model's accuracy on the pairs (a win rate under a reward model that is no better than
  chance says nothing);
- ``prompts``: one sampled answer per prompt from each model: answer lengths and the share that hit
  ``max_new_tokens``; KL(new || base) estimated on the new model's answers; with a ``reward_model``,
  mean reward and the win rate of new over base (ties count half);
- ``perplexity_texts``: perplexity before and after (forgetting);
- ``benchmarks``: accuracy on lm-evaluation-harness tasks (``training.engine.benchmarks``).

The stage writes ``evaluation.json`` (figures, the verdict, and example answers) and returns the
same report under ``report`` with flat numbers beside it (``preference_accuracy``,
``reference_preference_accuracy``, ``win_rate``, ...) for the metric series.

It also writes ``outcomes.jsonl``, one line per held-out item, so that mistakes can be sliced later
by what the held-out rows carry (the report's ``outcomes`` names the file and counts its lines):

- a reward model's pairs: ``{"kind": "pair", "item", "task_id", "group_id", "agreement", "n_votes",
  "prompt", "chosen", "rejected", "margin", "correct"}``: the row's ids as the held-out file gave
  them (absent when it had none), the reward margin (chosen minus rejected) and 1, 0.5 (a tie) or 0;
- a policy's prompts, when a reward model judged it against its base: ``{"kind": "prompt", "item",
  "task_id", "group_id", "prompt", "new", "base", "new_reward", "base_reward", "winner"}`` with
  ``winner`` one of ``new``, ``base``, ``tie``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.engine import benchmarks, data, statistics
from training.engine.events import CancelFlag, Cancelled, EventStream
from training.engine.models import Device, detect_device, load_causal_lm, load_reward_model, load_tokenizer
from training.engine.prompts import Prompt, conversation_text, prompt_text
from training.engine.runner import write_json
from training.engine.spec import SpecError
from training.engine.stages.evaluate_spec import BENCHMARK_LABELS, EvaluateSpec
from training.engine.stages.generate import as_user_message

PROGRESS_INTERVAL_S = 1.0
OUTCOMES_FILE = "outcomes.jsonl"
# Columns of a held-out row that name it (the preference export's); outcomes keep them to be joined back.
ID_COLUMNS = ("task_id", "group_id", "agreement", "n_votes")


def run(spec: EvaluateSpec, events: EventStream, cancel: CancelFlag) -> dict[str, Any]:
    device = detect_device()
    outcomes: list[dict[str, Any]] = []
    if spec.kind == "reward":
        report = reward_model_report(spec, device, Progress(events, cancel), outcomes)
    else:
        report = policy_report(spec, device, Progress(events, cancel), outcomes)
    kinds = [outcome["kind"] for outcome in outcomes]
    report["outcomes"] = {"file": OUTCOMES_FILE, "pairs": kinds.count("pair"), "prompts": kinds.count("prompt")}
    report = finite(report)  # JSON (and the databases' JSON columns) has no NaN or infinity
    write_jsonl(Path(spec.output_dir) / OUTCOMES_FILE, [finite(outcome) for outcome in outcomes])
    write_json(Path(spec.output_dir) / "evaluation.json", report)
    flat = flat_metrics(report)
    events.emit("eval", step=0, **flat)
    return {**flat, "report": report}


class Progress:
    """Progress in items scored or answered, over every part of the evaluation, with a time left."""

    def __init__(self, events: EventStream, cancel: CancelFlag) -> None:
        self.events, self.cancel = events, cancel
        self.done, self.total = 0, 0
        self.started = self.last_emitted = time.monotonic()

    def plan(self, items: int) -> None:
        self.total += items
        self.emit()

    def advance(self, items: int) -> None:
        self.done += items
        if self.cancel.requested:
            raise Cancelled(None)  # nothing to keep: an evaluation starts again from the beginning
        if time.monotonic() - self.last_emitted >= PROGRESS_INTERVAL_S or self.done >= self.total:
            self.emit()

    def emit(self) -> None:
        self.last_emitted = now = time.monotonic()
        elapsed = now - self.started
        eta = elapsed / self.done * max(self.total - self.done, 0) if self.done else None
        self.events.emit(
            "progress",
            step=self.done,
            total_steps=self.total,
            elapsed_s=round(elapsed, 3),
            eta_s=None if eta is None else round(eta, 1),
        )


# --- reward model ------------------------------------------------------------------------------


def reward_model_report(
    spec: EvaluateSpec, device: Device, progress: Progress, outcomes: list[dict[str, Any]]
) -> dict[str, Any]:
    pairs = data.load_records(spec.preferences)
    progress.plan(2 * len(pairs))
    tokenizer = load_tokenizer(spec.model, gguf_file=spec.gguf_file)
    model = _ready(load_reward_model(spec.model, device, gguf_file=spec.gguf_file), device)
    margins = reward_margins(model, tokenizer, pairs, spec, progress)
    correct = outcomes_of(margins)
    outcomes += pair_outcomes(pairs, margins, correct)
    figures = [
        statistics.rate_figure(
            "pairwise_accuracy",
            "Reward model accuracy on held-out pairs",
            outcomes=correct,
            against=0.5,
            note="Chance is 50%.",
        ),
        statistics.paired_figure(
            "mean_margin", "Reward margin, chosen over rejected", unit="reward", better=None, new=margins, base=None
        ),
    ]
    return {
        "kind": "reward",
        "figures": figures,
        "by_agreement": accuracy_by_agreement(pairs, correct),
        "summary": statistics.summarize(figures, reward_model_trusted=None),
        "examples": [],
    }


def reward_margins(model, tokenizer, pairs: list[dict], spec: EvaluateSpec, progress: Progress) -> np.ndarray:
    """The reward model's score of the chosen response minus the rejected one's, per pair."""
    prompts = [pair["prompt"] for pair in pairs]
    chosen = reward_scores(model, tokenizer, prompts, [pair["chosen"] for pair in pairs], spec, progress)
    rejected = reward_scores(model, tokenizer, prompts, [pair["rejected"] for pair in pairs], spec, progress)
    return (chosen - rejected).numpy()


def outcomes_of(differences: np.ndarray) -> np.ndarray:
    """1 where the first of two scores is higher, 0.5 on a tie, else 0."""
    return np.where(differences > 0, 1.0, np.where(differences == 0, 0.5, 0.0))


def pair_outcomes(pairs: list[dict], margins: np.ndarray, correct: np.ndarray) -> list[dict[str, Any]]:
    """One outcome per pair: its ids, its texts, the reward margin and whether the reward model was right."""
    return [
        {
            "kind": "pair",
            "item": index,
            **{column: pair[column] for column in ID_COLUMNS if column in pair},
            "prompt": pair["prompt"],
            "chosen": pair["chosen"],
            "rejected": pair["rejected"],
            "margin": float(margin),
            "correct": float(outcome),
        }
        for index, (pair, margin, outcome) in enumerate(zip(pairs, margins, correct, strict=True))
    ]


def accuracy_by_agreement(pairs: list[dict], correct: np.ndarray) -> list[dict[str, Any]]:
    """Accuracy per agreement level of the human votes (pairs the reviewers agreed on should be easier)."""
    levels: dict[float, list[float]] = {}
    for pair, outcome in zip(pairs, correct, strict=True):
        if isinstance(pair.get("agreement"), int | float):
            levels.setdefault(round(float(pair["agreement"]), 2), []).append(float(outcome))
    rows = []
    for level in sorted(levels, reverse=True):
        outcomes = levels[level]
        low, high = statistics.wilson_interval(sum(outcomes), len(outcomes))
        rows.append(
            {"agreement": level, "pairs": len(outcomes), "accuracy": float(np.mean(outcomes)), "interval": [low, high]}
        )
    return rows


# --- policy ------------------------------------------------------------------------------------


def policy_report(
    spec: EvaluateSpec, device: Device, progress: Progress, outcomes: list[dict[str, Any]]
) -> dict[str, Any]:
    pairs = data.load_records(spec.preferences) if spec.preferences else []
    prompt_rows = data.load_records(spec.prompts) if spec.prompts else []
    prompts = [row["prompt"] for row in prompt_rows]
    texts = list(data.load_rows(spec.perplexity_texts)["text"]) if spec.perplexity_texts else []
    has_reference = spec.reference_model is not None
    models_count = 2 if has_reference else 1
    progress.plan(models_count * (2 * len(pairs) + len(prompts) + len(texts)))
    progress.plan(len(prompts) * (1 if has_reference else 0))  # the reference's log-probs of the new answers (KL)
    if spec.reward_model is not None:
        progress.plan(2 * len(pairs) + models_count * len(prompts))

    tokenizer = load_tokenizer(spec.model, gguf_file=spec.gguf_file)
    new_model = _ready(load_causal_lm(spec.model, device, gguf_file=spec.gguf_file), device)
    reference = None
    if has_reference:
        check_same_tokenizer(tokenizer, load_tokenizer(spec.reference_model, gguf_file=spec.reference_gguf_file))
        reference = _ready(load_causal_lm(spec.reference_model, device, gguf_file=spec.reference_gguf_file), device)
    figures: list[dict[str, Any]] = []
    reward_model_trusted = None

    if pairs:
        new_margins = preference_margins(new_model, tokenizer, pairs, spec, progress)
        base_margins = preference_margins(reference, tokenizer, pairs, spec, progress) if reference else None
        figures.append(
            statistics.paired_figure(
                "preference_accuracy",
                "Agreement with held-out human preferences",
                unit="share",
                better="higher",
                new=(new_margins > 0).astype(float),
                base=None if base_margins is None else (base_margins > 0).astype(float),
                note="How often the model gives the chosen answer a higher log-probability than the rejected one.",
            )
        )
        figures.append(
            statistics.paired_figure(
                "logprob_margin",
                "Log-probability margin, chosen over rejected",
                unit="nats",
                better="higher",
                new=new_margins,
                base=base_margins,
            )
        )

    reward_model = reward_tokenizer = None
    if spec.reward_model is not None:
        reward_tokenizer = load_tokenizer(spec.reward_model)
        reward_model = _ready(load_reward_model(spec.reward_model, device), device)
        if pairs:
            judged = outcomes_of(reward_margins(reward_model, reward_tokenizer, pairs, spec, progress))
            accuracy = statistics.rate_figure(
                "reward_model_accuracy",
                "Reward model accuracy on held-out pairs",
                outcomes=judged,
                against=0.5,
                note="The judge of the win rate: it counts only when it beats chance.",
            )
            figures.append(accuracy)
            reward_model_trusted = accuracy["verdict"] == statistics.BETTER

    examples: list[dict[str, Any]] = []
    if prompts:
        figures += answer_figures(
            spec,
            tokenizer,
            new_model,
            reference,
            reward_model,
            reward_tokenizer,
            prompt_rows,
            progress,
            examples,
            outcomes,
        )

    if texts:
        new_nll, tokens = text_log_likelihoods(new_model, tokenizer, texts, spec, progress)
        base_nll = text_log_likelihoods(reference, tokenizer, texts, spec, progress)[0] if reference else None
        figures.append(
            statistics.paired_figure(
                "perplexity",
                "Perplexity on reference texts",
                unit="perplexity",
                better="lower",
                new=new_nll,
                base=base_nll,
                statistic=lambda nll, count: math.exp(np.sum(nll) / max(np.sum(count), 1)),
                weights=(tokens, tokens if base_nll is not None else None),
                note="Lower is better; a rise means the model forgot some of what it knew.",
            )
        )

    notes: list[str] = []
    if spec.benchmarks:
        figures += benchmark_figures(spec, tokenizer, new_model, reference, progress, notes)

    summary = statistics.summarize(figures, reward_model_trusted=reward_model_trusted)
    summary["warnings"] += notes
    return {
        "kind": "policy",
        "figures": figures,
        "reward_model_trusted": reward_model_trusted,
        "summary": summary,
        "examples": examples,
    }


def check_same_tokenizer(tokenizer: PreTrainedTokenizerBase, reference_tokenizer: PreTrainedTokenizerBase) -> None:
    """Every figure scores the same token ids on both models: their tokenizers must be the same."""
    if tokenizer.get_vocab() != reference_tokenizer.get_vocab():
        raise SpecError(
            "reference_model: its tokenizer differs from the model's; a side-by-side evaluation scores the "
            "same tokens on both models, so compare models of one family (one trained from the other)"
        )


def answer_figures(
    spec: EvaluateSpec,
    tokenizer: PreTrainedTokenizerBase,
    new_model: PreTrainedModel,
    reference: PreTrainedModel | None,
    reward_model: PreTrainedModel | None,
    reward_tokenizer: PreTrainedTokenizerBase | None,
    prompt_rows: list[dict[str, Any]],
    progress: Progress,
    examples: list[dict[str, Any]],
    outcomes: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Lengths, KL and (with a reward model) mean reward and win rate, from one sampled answer per prompt;
    with both, each prompt's outcome (who won) goes to ``outcomes``."""
    prompts: list[Prompt] = [row["prompt"] for row in prompt_rows]
    new = sampled_answers(new_model, tokenizer, prompts, spec, progress)
    base = sampled_answers(reference, tokenizer, prompts, spec, progress) if reference is not None else None
    figures = [
        statistics.paired_figure(
            "answer_tokens",
            "Answer length",
            unit="tokens",
            better=None,
            new=new.lengths,
            base=None if base is None else base.lengths,
            note="Mean tokens per answer; a reward model that likes length shows here.",
        ),
        statistics.paired_figure(
            "hit_length_limit",
            "Answers cut at the token limit",
            unit="share",
            better=None,
            new=new.truncated,
            base=None if base is None else base.truncated,
            note=f"Share of answers that reached {spec.max_new_tokens} new tokens without ending.",
        ),
    ]
    if reference is not None:
        kl = new.log_probs - answer_log_probs(reference, tokenizer, new, spec, progress)
        figures.append(
            statistics.paired_figure(
                "kl_from_base",
                "KL divergence from the base",
                unit="nats",
                better=None,
                new=kl,
                base=None,
                note="Estimated on the new model's sampled answers: mean of log p_new - log p_base per answer "
                "(KL(new || base) when answers are sampled at temperature 1, the default).",
            )
        )
    new_rewards = base_rewards = None
    if reward_model is not None:
        new_rewards = reward_scores(reward_model, reward_tokenizer, prompts, new.texts, spec, progress).numpy()
        if base is not None:
            base_rewards = reward_scores(reward_model, reward_tokenizer, prompts, base.texts, spec, progress).numpy()
        figures.append(
            statistics.paired_figure(
                "mean_reward", "Mean reward", unit="reward", better="higher", new=new_rewards, base=base_rewards
            )
        )
        if base_rewards is not None:
            wins = outcomes_of(new_rewards - base_rewards)
            outcomes += prompt_outcomes(prompt_rows, new, base, new_rewards, base_rewards, wins)
            figures.append(
                statistics.rate_figure(
                    "win_rate",
                    "Win rate against the base, judged by the reward model",
                    outcomes=wins,
                    against=0.5,
                    note="Ties count half.",
                )
            )
    for index in range(min(spec.examples, len(prompts))):
        example = {"prompt": prompts[index], "new": new.texts[index], "new_tokens": int(new.lengths[index])}
        if base is not None:
            example.update(base=base.texts[index], base_tokens=int(base.lengths[index]))
        if new_rewards is not None:
            example["new_reward"] = float(new_rewards[index])
        if base_rewards is not None:
            example["base_reward"] = float(base_rewards[index])
        examples.append(example)
    return figures


def prompt_outcomes(
    prompt_rows: list[dict[str, Any]],
    new: Answers,
    base: Answers,
    new_rewards: np.ndarray,
    base_rewards: np.ndarray,
    wins: np.ndarray,
) -> list[dict[str, Any]]:
    """One outcome per held-out prompt: its ids, both answers, both rewards, and who won under the reward model."""
    winners = {1.0: "new", 0.5: "tie", 0.0: "base"}
    return [
        {
            "kind": "prompt",
            "item": index,
            **{column: row[column] for column in ("task_id", "group_id") if column in row},
            "prompt": row["prompt"],
            "new": new.texts[index],
            "base": base.texts[index],
            "new_reward": float(new_rewards[index]),
            "base_reward": float(base_rewards[index]),
            "winner": winners[float(wins[index])],
        }
        for index, row in enumerate(prompt_rows)
    ]


def benchmark_figures(
    spec: EvaluateSpec,
    tokenizer: PreTrainedTokenizerBase,
    new_model: PreTrainedModel,
    reference: PreTrainedModel | None,
    progress: Progress,
    notes: list[str],
) -> list[dict[str, Any]]:
    """Each benchmark's accuracy on both models; one whose data is missing, or that fails, is left out with a note."""
    missing = benchmarks.missing_benchmark_data(
        names=spec.benchmarks, data_dir=spec.benchmark_data, truthfulqa=spec.truthfulqa
    )
    notes += [f"Benchmark left out: {why}." for why in missing.values()]
    names = [name for name in spec.benchmarks if name not in missing]
    if not names:
        return []
    results: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for role, model in (("new", new_model), ("base", reference)):
        if model is not None:
            results[role] = benchmarks.run_benchmarks(
                model=model,
                tokenizer=tokenizer,
                names=[name for name in names if name not in failed],
                data_dir=spec.benchmark_data,
                truthfulqa=spec.truthfulqa,
                limit=spec.benchmark_limit,
                batch_size=spec.batch_size,
                on_progress=BenchmarkProgress(progress).report,
                should_stop=lambda: progress.cancel.requested,
                on_error=lambda name, error, role=role: failed.setdefault(
                    name, f"{name} failed on the {role} model ({error})"
                ),
            )
    notes += [f"Benchmark left out: {why}." for why in failed.values()]
    figures = []
    for name, new in results["new"].items():
        if name in failed:  # a figure needs both sides
            continue
        label = f"{BENCHMARK_LABELS.get(name, name)} ({new['metric']})"
        figures.append(
            statistics.benchmark_figure(f"benchmark:{name}", label, new=new, base=results.get("base", {}).get(name))
        )
    return figures


class BenchmarkProgress:
    """The harness counts its own requests; it adds them to the evaluation's progress as they come."""

    def __init__(self, progress: Progress) -> None:
        self.progress, self.planned, self.reported = progress, 0, 0

    def report(self, done: int, total: int) -> None:
        if total > self.planned:
            self.progress.plan(total - self.planned)
            self.planned = total
        if done > self.reported:
            self.progress.advance(done - self.reported)
            self.reported = done


# --- scoring -----------------------------------------------------------------------------------


@torch.no_grad()
def reward_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    responses: Sequence[Prompt],
    spec: EvaluateSpec,
    progress: Progress,
) -> torch.Tensor:
    """The reward model's scalar for each prompt + response, rendered as TRL's RewardTrainer renders it."""
    texts = [conversation_text(p, r, tokenizer) for p, r in zip(prompts, responses, strict=True)]
    scores = []
    for batch in _batches(texts, spec.batch_size):
        # The rendered text already holds the special tokens TRL's tokenization puts there.
        inputs = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=spec.max_length)
        inputs = inputs.to(model.device)
        scores.append(model(**inputs).logits[:, 0].float().cpu())
        progress.advance(len(batch))
    return torch.cat(scores)


@torch.no_grad()
def preference_margins(model, tokenizer, pairs: list[dict], spec: EvaluateSpec, progress: Progress) -> np.ndarray:
    """log p(chosen | prompt) - log p(rejected | prompt) for each pair, summed over response tokens."""
    prompts = [pair["prompt"] for pair in pairs]
    chosen = response_logprobs(model, tokenizer, prompts, [pair["chosen"] for pair in pairs], spec, progress)
    rejected = response_logprobs(model, tokenizer, prompts, [pair["rejected"] for pair in pairs], spec, progress)
    return (chosen - rejected).numpy()


def response_logprobs(model, tokenizer, prompts, responses, spec: EvaluateSpec, progress: Progress) -> torch.Tensor:
    sequences = [
        _prompt_and_response_ids(prompt, response, tokenizer, spec.max_length)
        for prompt, response in zip(prompts, responses, strict=True)
    ]
    totals = []
    for batch in _batches(sequences, spec.batch_size):
        log_probs, mask = _token_log_probs(model, tokenizer, batch)
        totals.append((log_probs * mask).sum(dim=1).cpu())
        progress.advance(len(batch))
    return torch.cat(totals)


@torch.no_grad()
def text_log_likelihoods(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], spec: EvaluateSpec, progress
) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the negative log-likelihood of its tokens (each text cut to max_length) and their count."""
    sequences = [(0, tokenizer(text)["input_ids"][: spec.max_length]) for text in texts]
    nll, counts = [], []
    for batch in _batches(sequences, spec.batch_size):
        log_probs, mask = _token_log_probs(model, tokenizer, batch)
        nll += (-(log_probs * mask).sum(dim=1)).tolist()
        counts += mask.sum(dim=1).tolist()
        progress.advance(len(batch))
    return np.asarray(nll), np.asarray(counts)


class Answers:
    """One sampled answer per prompt: token ids after the prompt, text, length, and whether it hit the limit."""

    def __init__(self) -> None:
        self.prompt_ids: list[list[int]] = []
        self.answer_ids: list[list[int]] = []
        self.texts: list[str] = []
        self.cut: list[bool] = []  # reached max_new_tokens without ending
        self.log_probs = np.zeros(0)  # the sampling model's log-probability of each answer

    @property
    def lengths(self) -> np.ndarray:
        return np.asarray([len(ids) for ids in self.answer_ids], dtype=float)

    @property
    def truncated(self) -> np.ndarray:
        return np.asarray(self.cut, dtype=float)


@torch.no_grad()
def sampled_answers(model, tokenizer, prompts: Sequence[Prompt], spec: EvaluateSpec, progress: Progress) -> Answers:
    """Sample one answer per prompt (a chat model is asked a text prompt as a user message, as in generation),
    with the log-probability the model gave it (for the KL estimate)."""
    as_chat = getattr(tokenizer, "has_own_chat_template", False)
    answers = Answers()
    log_probs = []
    tokenizer.padding_side = "left"
    try:
        for batch in _batches(list(prompts), spec.batch_size):
            asked = [as_user_message(prompt) if as_chat else prompt for prompt in batch]
            texts = [prompt_text(prompt, tokenizer) for prompt in asked]
            inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=isinstance(asked[0], str))
            inputs = inputs.to(model.device)
            generated = model.generate(
                **inputs,
                do_sample=True,
                temperature=spec.temperature,
                # The whole distribution (transformers keeps the 50 likeliest tokens by default, and a
                # model's generation config may narrow it): the KL estimate scores what it samples.
                top_k=0,
                top_p=1.0,
                max_new_tokens=spec.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
            width = inputs["input_ids"].shape[1]
            for row in range(len(batch)):
                prompt_ids = inputs["input_ids"][row][inputs["attention_mask"][row].bool()].tolist()
                answer_ids, ended = _until_eos(generated[row, width:].tolist(), tokenizer)
                answers.prompt_ids.append(prompt_ids)
                answers.answer_ids.append(answer_ids)
                answers.cut.append(not ended)
                answers.texts.append(tokenizer.decode(answer_ids, skip_special_tokens=True))
            progress.advance(len(batch))
    finally:
        tokenizer.padding_side = "right"
    for batch in _batches(list(zip(answers.prompt_ids, answers.answer_ids, strict=True)), spec.batch_size):
        sequences = [(len(p), p + a) for p, a in batch]
        token_log_probs, mask = _token_log_probs(model, tokenizer, sequences)
        log_probs += (token_log_probs * mask).sum(dim=1).tolist()
    answers.log_probs = np.asarray(log_probs)
    return answers


@torch.no_grad()
def answer_log_probs(model, tokenizer, answers: Answers, spec: EvaluateSpec, progress: Progress) -> np.ndarray:
    """The log-probability ``model`` gives each of ``answers`` (the same token ids, after the same prompt)."""
    totals = []
    for batch in _batches(list(zip(answers.prompt_ids, answers.answer_ids, strict=True)), spec.batch_size):
        log_probs, mask = _token_log_probs(model, tokenizer, [(len(p), p + a) for p, a in batch])
        totals += (log_probs * mask).sum(dim=1).tolist()
        progress.advance(len(batch))
    return np.asarray(totals)


def _until_eos(ids: list[int], tokenizer) -> tuple[list[int], bool]:
    """The answer's ids up to and with its end-of-sequence token, and whether it ended (padding dropped)."""
    stops = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    for index, token in enumerate(ids):
        if token in stops:
            return ids[: index + 1] if token == tokenizer.eos_token_id else ids[:index], True
    return ids, False


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


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite number replaced by None, however deep."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Each figure's value as a metric (``name``), and its base's (``reference_<name>``)."""
    flat = {}
    for figure in report["figures"]:
        name = figure["name"].replace("benchmark:", "benchmark_")
        if isinstance(figure["new"], int | float) and math.isfinite(figure["new"]):
            flat[name] = figure["new"]
        if figure["base"] is not None and figure["name"] not in (
            "win_rate",
            "pairwise_accuracy",
            "reward_model_accuracy",
        ):
            flat[f"reference_{name}"] = figure["base"]
    return flat


def _ready(model: PreTrainedModel, device: Device) -> PreTrainedModel:
    return model.to("cuda" if device.cuda else "cpu").eval()


def _batches(items: Sequence, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
