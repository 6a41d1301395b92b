"""What each adapter method costs: full, LoRA, IA3, the bottleneck adapter and freeze on one SFT job.

Each method trains the same model on the same synthetic prompt/completion rows for ``--steps``
optimizer steps, in a fresh engine process (``python -m training.engine.run SPEC.json``), so that
each one's peak memory is its own: on CUDA the most tensor memory torch held, on CPU the process's
peak resident set (interpreter and libraries included, so compare differences, not ratios). The
table gives, per method, the trainable parameters (count and share of all), peak memory, wall time
per optimizer step (TRL's train call only: no loading or saving), tokens per second and the last
training loss. Methods run in the order given, then again in reverse with ``--repeat 2``, so that
a change in machine load hits them alike; the figures of a repeated method are the lower ones.

    .venv/bin/python benchmarks/adapter_methods.py                         # the tests' tiny Llama, CPU
    .venv/bin/python benchmarks/adapter_methods.py --model var/smollm2-135m --steps 20 --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

METHODS = ("full", "lora", "ia3", "bottleneck", "freeze")
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "good", "answer", "is", "correct", "safe"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="local safetensors model directory (default: the tests' tiny Llama)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per method")
    parser.add_argument("--batch-size", type=int, default=8, help="examples per step")
    parser.add_argument("--rows", type=int, default=256, help="synthetic training rows")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (OMP_NUM_THREADS) of each child")
    parser.add_argument("--repeat", type=int, default=1, help="passes over the methods (alternating order)")
    parser.add_argument("--keep", help="keep the work directory here instead of a temporary one")
    arguments = parser.parse_args()

    work = Path(arguments.keep or tempfile.mkdtemp(prefix="adapter-methods-"))
    work.mkdir(parents=True, exist_ok=True)
    if arguments.model:
        model = Path(arguments.model).resolve()
    else:
        from tests.tiny_model import build_tiny_causal_lm

        model = build_tiny_causal_lm(work / "model")
    dataset = write_rows(work / "sft.jsonl", arguments.rows)
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": str(arguments.threads),
        "PYTHONPATH": str(REPO_ROOT),
    }
    print(f"model {model}, {arguments.steps} steps of {arguments.batch_size}, {arguments.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip

    results: dict[str, dict] = {}
    for index in range(arguments.repeat):
        order = arguments.methods if index % 2 == 0 else list(reversed(arguments.methods))
        for method in order:
            metrics = run_method(method, model, dataset, work / f"{method}-{index}", arguments, environment)
            results[method] = best_of(results.get(method), metrics)
    print()
    print(table([results[method] | {"method": method} for method in arguments.methods]))


def run_method(method: str, model: Path, dataset: Path, output: Path, arguments, environment) -> dict:
    spec = {
        "stage": "sft",
        "model": str(model),
        "dataset": str(dataset),
        "output_dir": str(output),
        "eval_fraction": 0.0,
        "max_steps": arguments.steps,
        "batch_size": arguments.batch_size,
        "max_length": 128,
        "logging_steps": 1,
        "save_steps": arguments.steps + 1,  # no checkpoint inside the timed steps
        "adapter": {"method": method},
    }
    spec_path = output.with_suffix(".json")
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec))
    finished = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "training.engine.run", str(spec_path)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        sys.exit(f"{method} failed:\n{finished.stderr[-3000:]}\n{finished.stdout[-2000:]}")
    metrics = json.loads((output / "metrics.json").read_text())
    seconds, memory = metrics["train_seconds_per_step"], metrics["peak_memory_bytes"] / 2**20
    print(f"{method:<11} {seconds:.4f} s/step, peak {memory:.0f} MiB")
    return metrics


def best_of(previous: dict | None, metrics: dict) -> dict:
    if previous is None:
        return metrics
    best = dict(metrics)
    for name in ("train_seconds_per_step", "peak_memory_bytes"):
        best[name] = min(previous[name], metrics[name])
    best["train_tokens_per_second"] = max(
        previous.get("train_tokens_per_second", 0), metrics.get("train_tokens_per_second", 0)
    )
    return best


def table(rows: list[dict]) -> str:
    header = (
        f"{'method':<11} {'trainable':>12} {'share':>9} {'peak memory':>12} {'s/step':>9} {'tokens/s':>10} {'loss':>7}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['method']:<11} {row['trainable_parameters']:>12,} {row['trainable_percent']:>8.3f}% "
            f"{row['peak_memory_bytes'] / 2**20:>8.0f} MiB {row['train_seconds_per_step']:>9.4f} "
            f"{row.get('train_tokens_per_second', 0):>10.0f} {row['train_loss']:>7.3f}"
        )
    return "\n".join(lines)


def write_rows(path: Path, count: int) -> Path:
    generator = random.Random(0)  # noqa: S311 - synthetic text, not a secret
    rows = [
        {
            "prompt": f"Question {index}: " + " ".join(generator.choices(WORDS, k=8)),
            "completion": " ".join(generator.choices(WORDS, k=generator.randint(8, 24))),
        }
        for index in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


if __name__ == "__main__":
    main()
