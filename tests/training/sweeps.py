"""Helpers for sweep tests: launch a small sweep, and end its trials without the engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.training.conftest import FAST_SETTINGS
from training.models import JobStatus, ModelArtifact, Round, RunMetric, Sweep, TrainingRun, TrialState
from training.services.rounds import round_advance, round_stop
from training.services.sweeps import sweep_launch

LEARNING_RATE = {"name": "learning_rate", "type": "float", "low": 1e-6, "high": 1e-2, "log": True}


def launch(snapshot, model, manager, **fields: Any) -> Sweep:
    arguments = {
        "stage": "dpo",
        "dataset": snapshot,
        "base_model": model,
        "search_space": [LEARNING_RATE],
        "n_trials": 4,
        "metric": "preference_accuracy",
        "launched_by": manager,
        "settings": FAST_SETTINGS,
        **fields,
    }
    return sweep_launch(**arguments)


def running_trials(sweep: Sweep) -> list[Round]:
    return list(sweep.trials.filter(trial_state=TrialState.RUNNING).order_by("trial_number"))


def trained_run(trial: Round) -> TrainingRun:
    return trial.runs.get(position=0)


def finish_trial(trial: Round, value: float, *, metric: str = "preference_accuracy") -> None:
    """The trial's stage trains (an output model stands in), then evaluate reports ``value``."""
    run = trained_run(trial)
    output = ModelArtifact.objects.create(name=f"{trial.name} output", path=f"/models/{trial.pk}", produced_by=run)
    run.status, run.output_model, run.final_metrics = JobStatus.SUCCEEDED, output, {"train_loss": 1.0}
    run.save()
    round_advance(round_=trial)
    evaluate = trial.runs.get(stage="evaluate")
    evaluate.status, evaluate.final_metrics = JobStatus.SUCCEEDED, {metric: value}
    evaluate.save()
    round_advance(round_=trial)


def fail_trial(trial: Round) -> None:
    run = trained_run(trial)
    run.status, run.error = JobStatus.FAILED, "CUDA out of memory"
    run.save()
    round_stop(round_=trial, status=Round.Status.FAILED, reason="The dpo stage failed: CUDA out of memory")


def log_losses(trial: Round, losses: dict[int, float]) -> None:
    """Metric points the worker would have stored from the trial's training run."""
    run = trained_run(trial)
    for step, loss in losses.items():
        RunMetric.objects.create(run=run, step=step, values={"loss": loss})


class InProcessExecutor:
    """The worker's executor, with the engine run in this process as its command line runs it: every
    other part (claim, spec, events, round and sweep transitions) is the real worker's, without a
    fresh interpreter importing torch for each of a sweep's runs."""

    def start(self, spec_path: Path, workdir: Path) -> InProcessHandle:
        return InProcessHandle(spec_path)


class InProcessHandle:
    """Runs the spec at once (one torch thread, as the worker's engines run), then replays its events."""

    def __init__(self, spec_path: Path) -> None:
        import torch

        from tests.training.engine.conftest import run_spec_in_process

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self.status, self._events = run_spec_in_process(json.loads(spec_path.read_text()))
        finally:
            torch.set_num_threads(threads)

    def events(self) -> Iterator[dict[str, Any]]:
        yield from self._events

    def poll(self) -> int | None:
        return self.status

    def wait(self) -> int:
        return self.status

    def terminate(self) -> None:
        """It already ended: there is nothing to stop."""

    def kill(self) -> None:
        """It already ended: there is nothing to stop."""

    def log_tail(self) -> str:
        return ""
