"""Evaluation speed on the demo model: items/s of each benchmark through lm-evaluation-harness, and of
the evaluate stage's answer scoring (sampled answers, KL, reward, preference margins, perplexity).

Loads one model (default: the demo model, made by ``make demo-model``) and runs each section of
``SECTIONS`` on it in turn. The benchmarks section scores each benchmark separately with
``training.engine.benchmarks.run_benchmarks`` (the evaluate stage's call), timing the whole call
(building the harness's tasks from the local data, then scoring), and prints items, seconds,
items/s and the accuracy found; then the time for all of them, once per model and for a round's
evaluation (the new model and its base). Data: ``make benchmark-data`` (``--data-dir``);
TruthfulQA only with ``--truthfulqa FILE`` in its published multiple-choice format.

    .venv/bin/python benchmarks/evaluation.py --threads 1                  # default limit: ~1.5 min
    .venv/bin/python benchmarks/evaluation.py --threads 1 --limit 20 --names arc_easy,mmlu
    .venv/bin/python benchmarks/evaluation.py --threads 1 --sections answer_scoring

On a shared 2-core machine pass ``--threads 1``: two torch threads contending with other work can
be many times slower.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from training.engine import benchmarks  # noqa: E402 - after the offline settings above


@dataclass
class Loaded:
    """What every section is given: the model once loaded, and the command line."""

    model: Any
    tokenizer: Any
    arguments: argparse.Namespace


def benchmark_speed(loaded: Loaded) -> None:
    """Items/s of each benchmark whose data is present, then the time for all of them."""
    arguments = loaded.arguments
    names = arguments.names.split(",") if arguments.names else list(benchmarks.BENCHMARK_NAMES)
    missing = benchmarks.missing_benchmark_data(
        names=names, data_dir=arguments.data_dir, truthfulqa=arguments.truthfulqa
    )
    for note in missing.values():
        print(f"skipped {note}")
    print(f"\nlimit {arguments.limit} items per benchmark, batch size {arguments.batch_size}")
    print(f"{'benchmark':<16} {'items':>6} {'s':>8} {'items/s':>8}  accuracy")
    total_s = 0.0
    for name in (name for name in names if name not in missing):
        started = time.perf_counter()
        result = benchmarks.run_benchmarks(
            model=loaded.model,
            tokenizer=loaded.tokenizer,
            names=[name],
            data_dir=arguments.data_dir,
            truthfulqa=arguments.truthfulqa,
            limit=arguments.limit,
            batch_size=arguments.batch_size,
        )[name]
        seconds = time.perf_counter() - started
        total_s += seconds
        stderr = "n/a" if result["stderr"] is None else f"{result['stderr']:.3f}"
        print(
            f"{name:<16} {result['items']:>6} {seconds:>8.1f} {result['items'] / seconds:>8.2f}  "
            f"{result['metric']} {result['accuracy']:.3f} ± {stderr}"
        )
    print(
        f"all of them: {total_s:.0f} s for one model, about {2 * total_s / 60:.1f} min for a round (new model + base)"
    )


def answer_scoring(loaded: Loaded) -> None:
    """Items/s of the evaluate stage's other parts, on the demo campaign's prompts and answer pairs:
    sampled answers (lengths, win rate), the base's log-probability of them (KL), reward scoring
    (the demo model given a fresh score head: the speed of a reward model of its size), preference
    margins (agreement with human pairs) and perplexity; then what a round's evaluation of the
    demo snapshot's held-out split takes with the default settings."""
    import io

    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
    import django

    django.setup()
    from labeling.services.demo import REALISTIC_CAMPAIGN, realistic_task_rows
    from training.engine.events import CancelFlag, EventStream
    from training.engine.models import detect_device, load_reward_model
    from training.engine.stages import evaluate
    from training.engine.stages.evaluate_spec import EvaluateSpec

    arguments = loaded.arguments
    rows = realistic_task_rows(regular=arguments.prompts, gold=0, seed=0)[: arguments.prompts]
    prompts = [row["prompt"] for row in rows]
    answers_of = [[response["text"] for response in row["responses"]] for row in rows]
    pairs = [
        {"prompt": prompt, "chosen": texts[0], "rejected": texts[1]}
        for prompt, texts in zip(prompts, answers_of, strict=True)
    ]
    texts = [f"{prompt}\n\n{answered[0]}" for prompt, answered in zip(prompts, answers_of, strict=True)]
    spec = EvaluateSpec(model=arguments.model, output_dir="unused", max_new_tokens=arguments.max_new_tokens)
    progress = evaluate.Progress(EventStream(io.StringIO()), CancelFlag())
    progress.plan(10**9)  # progress is not what is measured here
    model, tokenizer = loaded.model, loaded.tokenizer
    reward_model = load_reward_model(arguments.model, detect_device()).to(model.device).eval()
    reward_model.config.pad_token_id = tokenizer.pad_token_id

    answers = None

    def sample() -> None:
        nonlocal answers
        answers = evaluate.sampled_answers(model, tokenizer, prompts, spec, progress)

    parts = [
        ("sampled answers", len(prompts), sample),
        (
            "KL: base log-probs",
            len(prompts),
            lambda: evaluate.answer_log_probs(model, tokenizer, answers, spec, progress),
        ),
        (
            "reward scoring",
            len(prompts),
            lambda: evaluate.reward_scores(reward_model, tokenizer, prompts, answers.texts, spec, progress),
        ),
        (
            "preference margins",
            len(pairs),
            lambda: evaluate.preference_margins(model, tokenizer, pairs, spec, progress),
        ),
        ("perplexity", len(texts), lambda: evaluate.text_log_likelihoods(model, tokenizer, texts, spec, progress)),
    ]
    print(f"{len(prompts)} prompts of {REALISTIC_CAMPAIGN.name!r}, answers of at most {spec.max_new_tokens} tokens")
    print(f"{'part':<20} {'items':>6} {'s':>8} {'items/s':>8}")
    rates = {}
    for name, items, part in parts:
        started = time.perf_counter()
        part()
        seconds = time.perf_counter() - started
        rates[name] = items / seconds
        print(f"{name:<20} {items:>6} {seconds:>8.1f} {rates[name]:>8.2f}")
    mean_tokens = float(answers.lengths.mean())
    print(f"answers: {mean_tokens:.0f} tokens on average, {answers.truncated.mean():.0%} cut at the limit")
    held_out = arguments.held_out
    # Per round: both models answer, are scored by the reward model and score the pairs and texts;
    # the base scores the new model's answers once.
    seconds = held_out * (
        2 / rates["sampled answers"]
        + 1 / rates["KL: base log-probs"]
        + 2 / rates["reward scoring"]
        + 2 / rates["preference margins"]
        + 2 / rates["perplexity"]
    )
    print(
        f"a round's evaluation of {held_out} held-out prompts and pairs (both models, with a reward model): "
        f"about {seconds / 60:.1f} min, besides loading the models and the benchmarks"
    )


# Each section takes the loaded model and prints its figures; main() runs them in this order.
SECTIONS: list[Callable[[Loaded], None]] = [benchmark_speed, answer_scoring]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="var/models/SmolLM2-135M-Instruct", help="local model directory")
    parser.add_argument("--data-dir", default="var/benchmark-data", help="benchmark data (`make benchmark-data`)")
    parser.add_argument("--truthfulqa", help="TruthfulQA multiple-choice file in its published format")
    parser.add_argument("--names", help="comma-separated benchmarks (default: all)")
    parser.add_argument("--limit", type=int, default=benchmarks.DEFAULT_LIMIT, help="items per benchmark")
    parser.add_argument("--batch-size", type=int, default=8, help="requests per forward pass")
    parser.add_argument("--threads", type=int, help="torch threads (CPU runs)")
    parser.add_argument("--prompts", type=int, default=16, help="answer scoring: prompts timed")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="answer scoring: tokens per answer")
    parser.add_argument(
        "--held-out", type=int, default=34, help="answer scoring: held-out prompts of the round to estimate"
    )
    parser.add_argument("--sections", help="comma-separated sections to run (default: all)")
    arguments = parser.parse_args()

    import torch

    from training.engine.models import detect_device, load_causal_lm, load_tokenizer

    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    device = detect_device()
    started = time.perf_counter()
    model = load_causal_lm(arguments.model, device).to("cuda" if device.cuda else "cpu")
    tokenizer = load_tokenizer(arguments.model)
    print(
        f"model {arguments.model} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
        f"{'cuda' if device.cuda else 'cpu'}, {torch.get_num_threads()} threads), loaded in "
        f"{time.perf_counter() - started:.1f} s, load average {os.getloadavg()[0]:.1f}"
    )
    loaded = Loaded(model=model, tokenizer=tokenizer, arguments=arguments)
    chosen = arguments.sections.split(",") if arguments.sections else [section.__name__ for section in SECTIONS]
    for section in SECTIONS:
        if section.__name__ in chosen:
            print(f"\n== {section.__name__}")
            section(loaded)


if __name__ == "__main__":
    main()
