"""Command line: ``python -m training.engine.run SPEC.json`` (or under ``accelerate launch -m``).

stdout carries only the JSON-line events; every library's printing and the human-readable log go to
stderr. Exit status: 0 finished or cancelled, 1 failed while running, 2 the spec was rejected.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from transformers import set_seed

from training.engine.events import CancelFlag, Cancelled, EventStream
from training.engine.models import detect_device
from training.engine.runner import write_json
from training.engine.spec import ModelSource, SpecError
from training.engine.stages import load_spec, spec_to_dict, stage_of

logger = logging.getLogger("training.engine")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.engine.run", description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="path of the spec JSON file")
    arguments = parser.parse_args(argv)

    cancel = CancelFlag()
    cancel.install_sigterm_handler()
    # A broken stdout means the worker is gone: stop at the end of the step, with a checkpoint.
    events = EventStream(sys.stdout, reader_gone=cancel.request)
    # Its stderr pipe is gone too then, and a library's progress bar must not crash a checkpoint save.
    sys.stderr = StderrThatOutlivesItsReader(sys.stderr)
    sys.stdout = sys.stderr  # libraries print; only events may reach the real stdout
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        spec = load_spec(arguments.spec)
    except SpecError as error:
        events.emit("failed", error=str(error), error_type="SpecError")
        return 2
    try:
        return run_spec(spec, events, cancel)
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Under torchrun, leave the process group before exiting. Left to the interpreter's shutdown,
    gloo's threads at times abort a rank after a finished run ("terminate called without an
    active exception", exit code -6), which fails the whole launch."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class StderrThatOutlivesItsReader:
    """Human logs: once nobody reads them any more (a broken pipe), further writes are dropped."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self.broken = True
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self.broken = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def run_spec(spec: ModelSource, events: EventStream, cancel: CancelFlag) -> int:
    """Run a checked spec to its end, emitting events; returns the process exit status."""
    stage = stage_of(spec)
    device = detect_device()
    output_dir = Path(spec.output_dir)
    events.emit(
        "started",
        stage=stage.name,
        output_dir=str(output_dir),
        device="cuda" if device.cuda else "cpu",
        dtype=str(device.dtype).removeprefix("torch."),
        processes=int(os.environ.get("WORLD_SIZE", "1")),  # more than 1 under accelerate launch
        spec=spec_to_dict(spec),
    )
    write_json(output_dir / "spec.json", spec_to_dict(spec))
    # Seeded before any model loads: fresh adapter weights and score heads are drawn at load time,
    # before a Trainer would seed, and a run must repeat exactly (a resumed run depends on it).
    set_seed(spec.seed)
    try:
        metrics = stage.run(spec, events, cancel)
    except Cancelled as cancelled:
        events.emit("cancelled", checkpoint=cancelled.checkpoint)
        return 0
    except Exception as error:
        logger.exception("%s stage failed", stage.name)
        events.emit("failed", error=f"{type(error).__name__}: {error}", error_type=type(error).__name__)
        return 1
    write_json(output_dir / "metrics.json", metrics)
    events.emit("finished", metrics=metrics, output_dir=str(output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
