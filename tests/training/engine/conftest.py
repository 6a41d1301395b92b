"""Fixtures for engine tests: a tiny local Llama, small synthetic datasets, and helpers to run specs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.tiny_model import build_tiny_causal_lm

MARKER = "Paris"
DISTRACTOR = "France"
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "good", "answer", "is", "correct", "helpful"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer random Llama and its BPE tokenizer, saved once per session as safetensors."""
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-model"))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def marker_preferences(count: int, *, seed: int) -> list[dict]:
    """Pairs that differ in one word: the chosen response has the marker where the rejected one has a distractor.

    Both words are one token, so length or position gives nothing away.
    """
    generator = random.Random(seed)
    rows = []
    for index in range(count):
        words = generator.choices(WORDS, k=generator.randint(3, 6))
        position = generator.randint(1, len(words))
        chosen, rejected = list(words), list(words)
        chosen.insert(position, MARKER)
        rejected.insert(position, DISTRACTOR)
        rows.append(
            {
                "prompt": f"Question {index}: say something.",
                "chosen": " ".join(chosen),
                "rejected": " ".join(rejected),
                "margin": 1.0,
            }
        )
    return rows


def sft_rows(count: int, *, seed: int) -> list[dict]:
    generator = random.Random(seed)
    return [
        {
            "prompt": f"Question {i}: what is the capital of France?",
            "completion": " ".join(generator.choices(WORDS, k=4)),
        }
        for i in range(count)
    ]


EVENT_TYPES = {"started", "progress", "metrics", "eval", "checkpoint", "finished", "failed", "cancelled"}


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models train ~50x faster on one thread than on two contended cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def parse_events(text: str) -> list[dict]:
    """Every stdout line as an event; fails on a line that is not a well-formed event."""
    events = []
    for line in text.splitlines():
        event = json.loads(line)
        assert event["event"] in EVENT_TYPES, event
        assert isinstance(event["time"], float), event
        events.append(event)
    return events


def run_spec_in_process(spec: dict, cancel=None) -> tuple[int, list[dict]]:
    """Run a spec the way the CLI does, in this process; returns the exit status and the events."""
    import io

    from training.engine.events import CancelFlag, EventStream
    from training.engine.run import run_spec
    from training.engine.stages import load_spec

    out = io.StringIO()
    status = run_spec(load_spec(spec), EventStream(out), cancel or CancelFlag())
    return status, parse_events(out.getvalue())


def only(events: list[dict], kind: str) -> list[dict]:
    return [event for event in events if event["event"] == kind]


@pytest.fixture
def trainable_snapshot(monkeypatch):
    """Records the trainable parameters each stage starts from; ``unchanged()`` lists those training left equal."""
    import torch

    from training.engine import adapters
    from training.engine.stages import dpo, kto, online, ppo, pretrain, reward, sft

    captured = {}

    def apply_and_record(model, adapter, *, task_type):
        wrapped = adapters.apply_adapter(model, adapter, task_type=task_type)
        captured["model"] = wrapped
        captured["before"] = {n: p.detach().clone() for n, p in wrapped.named_parameters() if p.requires_grad}
        return wrapped

    for module in (sft, pretrain, reward, dpo, ppo, kto, online):
        monkeypatch.setattr(module, "apply_adapter", apply_and_record)

    class Snapshot:
        @property
        def model(self):
            return captured["model"]

        @property
        def names(self) -> list[str]:
            return list(captured["before"])

        def unchanged(self) -> list[str]:
            after = dict(captured["model"].named_parameters())
            return [name for name, before in captured["before"].items() if torch.equal(before, after[name].detach())]

    return Snapshot()
