"""What the training engine costs over plain TRL: the same small SFT and DPO jobs run both ways.

Each job runs in a fresh process twice: ``python -m training.engine.run SPEC.json`` and a minimal
script that calls TRL directly with the same model, data and hyperparameters (the ``plain`` mode of
this file). For each it prints the wall time of the whole process (imports, loading, training,
saving), TRL's own training time, the tokens trained on and tokens/s, then the engine/plain ratios.
Target: engine/plain <= 1.05.

With CUDA it also prints model FLOPs utilisation (6N FLOPs per trained token, plus 2N per token for
the DPO reference forward; attention FLOPs left out), for example on SmolLM2-135M saved as
safetensors (see DESIGN.md, "Demo model"):

    .venv/bin/python benchmarks/training_overhead.py                      # a small random Llama, CPU-sized
    .venv/bin/python benchmarks/training_overhead.py --model var/smollm2-135m --steps 50 --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

# Dense bf16 peak of the GPUs we expect to meet, FLOP/s.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "good", "answer", "is", "correct", "safe"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="local safetensors model directory (default: a small random Llama)")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per job")
    parser.add_argument("--batch-size", type=int, default=8, help="examples per step")
    parser.add_argument("--rows", type=int, default=512, help="synthetic training rows per job")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for every child process (CPU runs)")
    parser.add_argument("--keep", help="keep the work directory here instead of a temporary one")
    parser.add_argument("--plain", nargs=2, metavar=("STAGE", "SPEC"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.plain:
        run_plain(*arguments.plain)
        return

    work = Path(arguments.keep or tempfile.mkdtemp(prefix="training-overhead-"))
    work.mkdir(parents=True, exist_ok=True)
    model = Path(arguments.model).resolve() if arguments.model else build_small_llama(work / "model")
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if arguments.threads:
        environment["OMP_NUM_THREADS"] = str(arguments.threads)
    print(f"model {model} ({parameter_count(model) / 1e6:.1f} M parameters), {arguments.steps} steps of "
          f"{arguments.batch_size}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip

    results = {}
    for stage in ("sft", "dpo"):
        dataset = write_rows(work / f"{stage}.jsonl", stage, arguments.rows)
        spec = {
            "stage": stage,
            "model": str(model),
            "dataset": str(dataset),
            "eval_fraction": 0.0,
            "max_steps": arguments.steps,
            "batch_size": arguments.batch_size,
            "learning_rate": 1e-5,
            "max_length": 256,
            "logging_steps": 10,
            "adapter": {"method": "full"},
        }
        # Alternate the order so that a change in machine load hits both paths alike.
        for path in ("engine", "plain") if stage == "sft" else ("plain", "engine"):
            job = {**spec, "output_dir": str(work / f"{stage}-{path}")}
            spec_path = work / f"{stage}-{path}.json"
            spec_path.write_text(json.dumps(job))
            results[stage, path] = run_job(stage, path, spec_path, environment)

    cuda = gpu_peak_flops()
    print()
    header = f"{'job':<5} {'path':<7} {'wall s':>8} {'train s':>8} {'tokens':>9} {'tokens/s':>9}"
    print(header + ("    MFU" if cuda else ""))
    for (stage, path), result in results.items():
        line = (
            f"{stage:<5} {path:<7} {result['wall_s']:>8.2f} {result['train_s']:>8.2f} "
            f"{result['tokens']:>9.0f} {result['tokens'] / result['train_s']:>9.0f}"
        )
        if cuda:
            flops_per_token = (8 if stage == "dpo" else 6) * parameter_count(model)
            line += f" {result['tokens'] / result['train_s'] * flops_per_token / cuda:>6.1%}"
        print(line)
    print()
    ratios = []
    for stage in ("sft", "dpo"):
        engine, plain = results[stage, "engine"], results[stage, "plain"]
        wall, train = engine["wall_s"] / plain["wall_s"], engine["train_s"] / plain["train_s"]
        ratios.append(wall)
        print(f"{stage}: engine/plain wall {wall:.3f}, training time {train:.3f}")
    verdict = "meets" if max(ratios) <= 1.05 else "misses"
    print(f"worst wall-time ratio {max(ratios):.3f}: {verdict} the target of <= 1.05")
    print(f"work directory: {work}")


def run_job(stage: str, path: str, spec_path: Path, environment: dict) -> dict:
    """Run one job in a fresh process; wall time, TRL's training time and tokens trained on."""
    if path == "engine":
        command = [sys.executable, "-m", "training.engine.run", str(spec_path)]
    else:
        command = [sys.executable, str(Path(__file__).resolve()), "--plain", stage, str(spec_path)]
    started = time.perf_counter()
    # The command is this interpreter running the engine or this file: nothing from outside.
    result = subprocess.run(  # noqa: S603
        command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{stage} via {path} failed:\n{result.stderr[-4000:]}")
    if path == "engine":
        events = [json.loads(line) for line in result.stdout.splitlines()]
        finished = next(event for event in events if event["event"] == "finished")
        tokens = max(event.get("num_tokens", 0) for event in events if event["event"] == "metrics")
        summary = {"train_s": finished["metrics"]["train_runtime"], "tokens": tokens}
    else:
        summary = json.loads(result.stdout.splitlines()[-1])  # TRL prints its logs above it
    print(f"  {stage} via {path}: {wall:.1f} s")
    return {"wall_s": wall, **summary}


def run_plain(stage: str, spec_path: str) -> None:
    """The job as a short script would write it with TRL alone; prints one JSON summary line."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    spec = json.loads(Path(spec_path).read_text())
    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.bfloat16 if cuda else torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    rows = datasets.Dataset.from_list([json.loads(line) for line in Path(spec["dataset"]).read_text().splitlines()])
    common = {
        "output_dir": str(Path(spec["output_dir"]) / "checkpoints"),
        "max_steps": spec["max_steps"],
        "per_device_train_batch_size": spec["batch_size"],
        "learning_rate": spec["learning_rate"],
        "max_length": spec["max_length"],
        "logging_steps": spec["logging_steps"],
        "report_to": "none",
    }
    if not cuda:
        common |= {"use_cpu": True, "bf16": False, "gradient_checkpointing": False}
    if stage == "sft":
        trainer = SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=rows, processing_class=tokenizer)
    else:
        trainer = DPOTrainer(model=model, args=DPOConfig(**common), train_dataset=rows, processing_class=tokenizer)
    result = trainer.train()
    trainer.save_model(str(Path(spec["output_dir"]) / "model"))
    tokens = max(entry.get("num_tokens", 0) for entry in trainer.state.log_history)
    print(json.dumps({"train_s": result.metrics["train_runtime"], "tokens": tokens}))


def build_small_llama(directory: Path) -> Path:
    """A random 4-layer Llama (about 3.6 M parameters) with the tests' locally trained tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tests.tiny_model import build_tiny_causal_lm

    build_tiny_causal_lm(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def write_rows(path: Path, stage: str, count: int) -> Path:
    generator = random.Random(0)  # noqa: S311 - synthetic text, not a secret

    def sentence() -> str:
        return " ".join(generator.choices(WORDS, k=generator.randint(8, 24)))

    rows = []
    for index in range(count):
        prompt = f"Question {index}: {sentence()}?"
        if stage == "sft":
            rows.append({"prompt": prompt, "completion": sentence()})
        else:
            rows.append({"prompt": prompt, "chosen": sentence() + " Paris", "rejected": sentence() + " France"})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def parameter_count(model: Path) -> int:
    from safetensors import safe_open

    total = 0
    for file in model.glob("*.safetensors"):
        with safe_open(file, framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 - safe_open has no __iter__
                total += math.prod(weights.get_slice(name).get_shape())
    return total


def gpu_peak_flops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


if __name__ == "__main__":
    main()
