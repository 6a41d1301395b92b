"""Evaluation speed on the demo model: items/s of each benchmark through lm-evaluation-harness.

Loads one model (default: the demo model, made by ``make demo-model``) and runs each section of
``SECTIONS`` on it in turn. The benchmarks section scores each benchmark separately with
``training.engine.benchmarks.run_benchmarks`` (the evaluate stage's call), timing the whole call
(building the harness's tasks from the local data, then scoring), and prints items, seconds,
items/s and the accuracy found; then the time for all of them, once per model and for a round's
evaluation (the new model and its base). Data: ``make benchmark-data`` (``--data-dir``);
TruthfulQA only with ``--truthfulqa FILE`` in its published multiple-choice format.

    .venv/bin/python benchmarks/evaluation.py --threads 1                  # default limit: ~1.5 min
    .venv/bin/python benchmarks/evaluation.py --threads 1 --limit 20 --names arc_easy,mmlu

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


# Each section takes the loaded model and prints its figures; main() runs them in this order.
SECTIONS: list[Callable[[Loaded], None]] = [benchmark_speed]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="var/models/SmolLM2-135M-Instruct", help="local model directory")
    parser.add_argument("--data-dir", default="var/benchmark-data", help="benchmark data (`make benchmark-data`)")
    parser.add_argument("--truthfulqa", help="TruthfulQA multiple-choice file in its published format")
    parser.add_argument("--names", help="comma-separated benchmarks (default: all)")
    parser.add_argument("--limit", type=int, default=benchmarks.DEFAULT_LIMIT, help="items per benchmark")
    parser.add_argument("--batch-size", type=int, default=8, help="requests per forward pass")
    parser.add_argument("--threads", type=int, help="torch threads (CPU runs)")
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
    for section in SECTIONS:
        print(f"\n== {section.__name__}")
        section(loaded)


if __name__ == "__main__":
    main()
