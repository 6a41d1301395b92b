"""The command line: events on stdout, SIGTERM -> checkpoint + cancelled, resume to the same end, no Django."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import torch
from safetensors.torch import load_file

from tests.conftest import REPO_ROOT
from tests.training.engine.conftest import (
    marker_preferences,
    only,
    parse_events,
    run_spec_in_process,
    sft_rows,
    write_jsonl,
)
from training.engine.events import CancelFlag, EventStream


def engine_command(spec_path) -> list[str]:
    return [sys.executable, "-m", "training.engine.run", str(spec_path)]


def engine_environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def write_spec(path, spec: dict):
    path.write_text(json.dumps(spec))
    return path


def test_it_runs_a_spec_file_from_the_command_line(tiny_model, tmp_path):
    dataset = write_jsonl(tmp_path / "prefs.jsonl", marker_preferences(24, seed=0))
    spec = {
        "stage": "dpo",
        "model": str(tiny_model),
        "output_dir": str(tmp_path / "out"),
        "dataset": str(dataset),
        "max_steps": 2,
        "batch_size": 4,
        "logging_steps": 1,
    }
    result = subprocess.run(
        engine_command(write_spec(tmp_path / "spec.json", spec)),
        cwd=REPO_ROOT,
        env=engine_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    events = parse_events(result.stdout)  # every stdout line is an event; library output went to stderr
    assert events[0]["event"] == "started" and events[-1]["event"] == "finished"
    assert events[0]["device"] == "cpu" and events[0]["spec"]["beta"] == 0.1
    assert only(events, "progress")[-1]["step"] == 2
    output = tmp_path / "out"
    assert json.loads((output / "spec.json").read_text())["stage"] == "dpo"
    assert json.loads((output / "metrics.json").read_text())["global_step"] == 2
    assert (output / "model" / "adapter_model.safetensors").is_file()
    assert (output / "model" / "tokenizer.json").is_file()
    assert (output / "checkpoints" / "checkpoint-2").is_dir()


def test_it_runs_under_accelerate_launch_with_one_event_stream(tiny_model, tmp_path):
    dataset = write_jsonl(tmp_path / "sft.jsonl", sft_rows(24, seed=0))
    spec = {
        "stage": "sft",
        "model": str(tiny_model),
        "output_dir": str(tmp_path / "out"),
        "dataset": str(dataset),
        "max_steps": 3,
        "batch_size": 2,
        "logging_steps": 1,
    }
    # --multi_gpu means "through torchrun"; without CUDA the two processes train on CPU over gloo.
    # (--cpu with several processes would need mpirun.)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    result = subprocess.run(
        [*launch, "-m", "training.engine.run", str(write_spec(tmp_path / "spec.json", spec))],
        cwd=REPO_ROOT,
        env=engine_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    events = parse_events(result.stdout)
    assert [e["event"] for e in events].count("started") == 1 and events[0]["processes"] == 2
    assert events[-1]["event"] == "finished" and events[-1]["metrics"]["global_step"] == 3
    assert (tmp_path / "out" / "model" / "adapter_model.safetensors").is_file()


def test_it_reports_a_bad_spec_as_a_failed_event_and_exit_status_2(tmp_path):
    spec_path = write_spec(tmp_path / "spec.json", {"stage": "sft", "model": str(tmp_path), "output_dir": "x"})
    result = subprocess.run(
        engine_command(spec_path), cwd=REPO_ROOT, env=engine_environment(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    (event,) = parse_events(result.stdout)
    assert event["event"] == "failed" and event["error"] == "dataset: is required"


def test_it_stops_on_sigterm_with_a_checkpoint_and_resumes_to_the_same_end(tiny_model, tmp_path):
    dataset = write_jsonl(tmp_path / "sft.jsonl", sft_rows(64, seed=0))
    spec = {
        "stage": "sft",
        "model": str(tiny_model),
        "output_dir": str(tmp_path / "out"),
        "dataset": str(dataset),
        "max_steps": 150,
        "batch_size": 2,
        "save_steps": 1000,
        "logging_steps": 10,
        "adapter": {"method": "full"},
    }
    process = subprocess.Popen(
        engine_command(write_spec(tmp_path / "spec.json", spec)),
        cwd=REPO_ROOT,
        env=engine_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if json.loads(line)["event"] == "progress":
            process.send_signal(signal.SIGTERM)
            break
    lines += process.stdout.readlines()
    assert process.wait(timeout=120) == 0
    events = parse_events("".join(lines))
    assert events[-1]["event"] == "cancelled", [e["event"] for e in events]
    (checkpoint,) = only(events, "checkpoint")
    assert checkpoint["step"] < 150 and os.path.isdir(checkpoint["path"])
    assert events[-1]["checkpoint"] == checkpoint["path"]
    assert not (tmp_path / "out" / "metrics.json").exists()

    resumed = subprocess.run(
        engine_command(write_spec(tmp_path / "resume.json", {**spec, "resume_from": "latest"})),
        cwd=REPO_ROOT,
        env=engine_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    events = parse_events(resumed.stdout)
    assert events[-1]["event"] == "finished"
    assert only(events, "progress")[0]["step"] == checkpoint["step"] + 1
    assert events[-1]["metrics"]["global_step"] == 150


class CancelAfter(CancelFlag):
    """A cancel request that arrives during step ``step`` (as SIGTERM would)."""

    def __init__(self, step: int) -> None:
        self.checks_left = step

    @property
    def requested(self) -> bool:
        self.checks_left -= 1
        return self.checks_left <= 0


def test_a_cancelled_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tiny_model, tmp_path):
    dataset = write_jsonl(tmp_path / "sft.jsonl", sft_rows(40, seed=0))
    spec = {
        "stage": "sft",
        "model": str(tiny_model),
        "dataset": str(dataset),
        "max_steps": 6,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "adapter": {"method": "full"},
    }
    status, _ = run_spec_in_process({**spec, "output_dir": str(tmp_path / "straight")})
    assert status == 0
    status, events = run_spec_in_process({**spec, "output_dir": str(tmp_path / "split")}, cancel=CancelAfter(3))
    assert status == 0 and events[-1]["event"] == "cancelled"
    assert events[-1]["checkpoint"].endswith("checkpoint-3")
    status, events = run_spec_in_process({**spec, "output_dir": str(tmp_path / "split"), "resume_from": "latest"})
    assert status == 0 and events[-1]["metrics"]["global_step"] == 6

    straight = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    split = load_file(tmp_path / "split" / "model" / "model.safetensors")
    assert straight.keys() == split.keys()
    for name, weight in straight.items():
        torch.testing.assert_close(split[name], weight, rtol=0, atol=1e-6, msg=name)


def test_the_engine_imports_no_django():
    code = (
        "import sys, pkgutil, importlib, training.engine, training.engine.stages\n"
        "for package in (training.engine, training.engine.stages):\n"
        "    for module in pkgutil.iter_modules(package.__path__):\n"
        "        importlib.import_module(f'{package.__name__}.{module.name}')\n"
        "import training.engine.run\n"
        "assert not [m for m in sys.modules if m == 'django' or m.startswith('django.')], 'django imported'\n"
        "print(len([m for m in sys.modules if m.startswith('training.engine')]))\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.strip()) >= 15


def test_a_cancelled_ppo_run_checkpoints_and_resumes_to_the_weights_of_an_uninterrupted_one(tiny_model, tmp_path):
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"Question {i}: say"} for i in range(16)])
    spec = {
        "stage": "ppo",
        "model": str(tiny_model),
        "reward_model": str(tiny_model),
        "output_dir": str(tmp_path / "out"),
        "dataset": str(prompts),
        "max_steps": 6,  # more updates than one pass over the data holds (16 prompts, 4 per update)
        "batch_size": 4,
        "response_length": 6,
        "num_ppo_epochs": 1,
        "adapter": {"method": "full"},
        "logging_steps": 1,
    }
    status, events = run_spec_in_process(spec, cancel=CancelAfter(5))
    assert status == 0 and events[-1]["event"] == "cancelled"
    checkpoint = events[-1]["checkpoint"]
    assert checkpoint.endswith("checkpoint-5") and os.path.isdir(os.path.join(checkpoint, "value_model"))

    status, events = run_spec_in_process({**spec, "resume_from": "latest"})
    assert status == 0, events[-1]
    assert only(events, "progress")[0]["step"] == 6
    assert only(events, "finished")[0]["metrics"]["global_step"] == 6

    status, _ = run_spec_in_process({**spec, "output_dir": str(tmp_path / "straight")})
    assert status == 0
    resumed = load_file(str(tmp_path / "out" / "model" / "model.safetensors"))
    straight = load_file(str(tmp_path / "straight" / "model" / "model.safetensors"))
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, atol=1e-6, rtol=0, msg=name)


def test_when_its_reader_is_gone_it_stops_at_the_end_of_the_step_with_a_checkpoint(tiny_model, tmp_path):
    # The worker died: the engine's stdout pipe breaks. It must not crash before checkpointing.
    dataset = write_jsonl(tmp_path / "sft.jsonl", sft_rows(64, seed=0))
    spec = {
        "stage": "sft",
        "model": str(tiny_model),
        "output_dir": str(tmp_path / "out"),
        "dataset": str(dataset),
        "max_steps": 2000,
        "batch_size": 2,
        "save_steps": 100000,
        "logging_steps": 1,
        "adapter": {"method": "full"},
    }
    process = subprocess.Popen(
        engine_command(write_spec(tmp_path / "spec.json", spec)),
        cwd=REPO_ROOT,
        env=engine_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in process.stdout:
        if json.loads(line)["event"] == "metrics" and json.loads(line)["step"] >= 1:
            break
    process.stdout.close()  # the reader goes away
    assert process.wait(timeout=120) == 0
    checkpoints = list((tmp_path / "out" / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 1 and int(checkpoints[0].name.split("-")[1]) < 2000


def test_an_event_stream_whose_reader_is_gone_asks_to_cancel_once_and_stops_writing():
    class BrokenPipe:
        writes = 0

        def write(self, text):
            self.writes += 1
            raise BrokenPipeError

        def flush(self):
            pass

    out, cancel = BrokenPipe(), CancelFlag()
    stream = EventStream(out, reader_gone=cancel.request)
    assert stream.emit("progress", step=1)["step"] == 1
    stream.emit("progress", step=2)
    assert cancel.requested and out.writes == 1


def test_latest_is_the_newest_complete_checkpoint(tmp_path):
    from training.engine.runner import resume_checkpoint
    from training.engine.stages.sft_spec import SFTSpec

    checkpoints = tmp_path / "out" / "checkpoints"
    for step, complete in ((5, True), (10, True), (15, False)):  # 15 was cut short while saving
        (checkpoints / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (checkpoints / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    spec = SFTSpec(model="m", output_dir=str(tmp_path / "out"), resume_from="latest")
    assert resume_checkpoint(spec) == str(checkpoints / "checkpoint-10")


def test_human_logs_are_dropped_once_nobody_reads_them():
    from training.engine.run import StderrThatOutlivesItsReader

    class Closed:
        def write(self, text):
            raise BrokenPipeError

        def flush(self):
            raise BrokenPipeError

    stderr = StderrThatOutlivesItsReader(Closed())
    assert stderr.write("Writing model shards: 100%") == len("Writing model shards: 100%")
    stderr.flush()
    assert stderr.broken
