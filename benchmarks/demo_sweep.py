"""A learning-rate sweep of DPO on the demo model, against a round with the default settings.

What `make demo` offers a manager, measured: the demo data (``create_demo_users``, ``seed_demo``),
the demo model registered, and the preference snapshot the datasets page builds by default
(Bradley-Terry over the realistic campaign, 10% of prompts held out). On it, one single-stage DPO
round with the platform's defaults (the baseline: the stage's default adapter learning rate), then a
sweep launched through ``sweep_launch`` over the learning rate alone (a log range around the
default), every trial and the baseline on the same budget (``--steps`` optimizer steps of
``--batch-size`` pairs, LoRA, the same seed). The sweep's metric is the evaluate stage's held-out
log-probability margin (chosen over rejected, nats); the table also gives agreement with the
held-out human preferences (the share of pairs where the chosen answer gets the higher
log-probability), the DPO stage's own ``eval_loss`` (on the slice of the training rows it holds
out), and each round's worker seconds (DPO and evaluation). The untrained model's figures are the
first row. The evaluation is kept cheap: no lm-evaluation-harness benchmarks, answers of a few
tokens, no examples kept.

    .venv/bin/python benchmarks/demo_sweep.py --threads 1                       # 4 trials of 8 steps
    .venv/bin/python benchmarks/demo_sweep.py --trials 6 --steps 12 --low 1e-5 --high 5e-4
    .venv/bin/python benchmarks/demo_sweep.py --probe                          # one step: its seconds

Every run goes through the real worker (the engine in a subprocess, as ``manage.py worker`` runs
it), in a temporary VAR_DIR with its own SQLite database; nothing else is touched. The model
directory defaults to the one ``make demo-model`` writes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

DEFAULT_MODEL = REPO_ROOT / "var" / "models" / "SmolLM2-135M-Instruct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="the demo model's safetensors directory")
    parser.add_argument("--trials", type=int, default=4, help="trials of the sweep")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps of every round")
    parser.add_argument("--batch-size", type=int, default=8, help="preference pairs per step")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per example in training")
    parser.add_argument("--low", type=float, default=1e-5, help="lowest learning rate searched")
    parser.add_argument("--high", type=float, default=5e-4, help="highest learning rate searched")
    parser.add_argument("--seed", type=int, default=0, help="the sweep's sampler seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each engine process")
    parser.add_argument("--probe", action="store_true", help="time one DPO step of the budget, then stop")
    arguments = parser.parse_args()
    if not (arguments.model / "config.json").is_file():
        parser.error(f"--model: no model at {arguments.model} (make demo-model writes it)")

    var_dir = Path(tempfile.mkdtemp(prefix="demo-sweep-"))
    os.environ.update(
        {
            "VAR_DIR": str(var_dir),
            "DEBUG": "1",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "TRAINING_ENGINE_THREADS": str(arguments.threads),
            "TRAINING_HEARTBEAT_S": "5",
            "DJANGO_SETTINGS_MODULE": "rlhf_platform.settings",
            # The demo model stays where it is: its directory becomes a model root of this VAR_DIR.
            "MODEL_ROOTS": str(arguments.model.resolve().parent),
        }
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()

    from training.engine.stages.dpo_spec import DPOSpec
    from training.models import Round, Sweep
    from training.services.rounds import round_launch
    from training.services.sweeps import sweep_launch

    started = time.perf_counter()
    manager, model, snapshot = demo_world(arguments.model)
    print(f"demo world ready in {time.perf_counter() - started:.0f} s: snapshot {snapshot.name!r}, "
          f"counts {snapshot.counts}")  # fmt: skip

    settings = {
        "adapter": "lora",
        "max_steps": 1 if arguments.probe else arguments.steps,
        "batch_size": arguments.batch_size,
        "logging_steps": 1,
        "advanced": {"max_length": arguments.max_length},
    }
    # Benchmarks off (none named), answers of a few tokens, none kept: the pairs' figures are the point.
    evaluation = {"evaluate": {"advanced": {"benchmarks": [], "max_new_tokens": 4, "examples": 0}}}
    default_rate = DPOSpec.default_learning_rates["adapter"]
    print(f"{model.name}, DPO LoRA, {settings['max_steps']} steps of {arguments.batch_size} pairs, "
          f"max_length {arguments.max_length}, {arguments.threads} torch thread(s), "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip

    baseline = round_launch(
        name="defaults",
        preset=Round.Preset.SINGLE,
        stage="dpo",
        base_model=model,
        dataset=snapshot,
        launched_by=manager,
        settings=settings,
        stage_settings={} if arguments.probe else evaluation,
        evaluate=not arguments.probe,
    )
    seconds: dict[int, float] = defaultdict(float)  # round id -> worker seconds of its runs
    run_queue(seconds)
    if arguments.probe:
        run = baseline.runs.get(stage="dpo")
        print(f"one step, the whole DPO run: {seconds[baseline.pk]:.1f} s ({run.status}; "
              f"train_runtime {run.final_metrics.get('train_runtime', '?')} s)")  # fmt: skip
        return

    sweep = sweep_launch(
        stage="dpo",
        dataset=snapshot,
        base_model=model,
        search_space=[
            {"name": "learning_rate", "type": "float", "low": arguments.low, "high": arguments.high, "log": True}
        ],
        n_trials=arguments.trials,
        metric="logprob_margin",
        pruner=Sweep.Pruner.NONE,
        seed=arguments.seed,
        launched_by=manager,
        settings=settings,
        stage_settings=evaluation,
    )
    run_queue(seconds)
    sweep.refresh_from_db()

    rows = [("defaults", default_rate, figures(baseline), seconds[baseline.pk])]
    for trial in sweep.trials.order_by("trial_number"):
        rows.append(
            (f"trial {trial.trial_number}", trial.trial_params["learning_rate"], figures(trial), seconds[trial.pk])
        )
    base = figures(baseline, reference=True)
    print(f"\nsweep {sweep.status}; metric logprob_margin (held-out, nats, higher is better)\n")
    print(f"{'round':<10} {'learning rate':>13} {'logprob_margin':>15} {'preference_acc':>15} "
          f"{'eval_loss':>10} {'wall s':>7}")  # fmt: skip
    print(f"{'untrained':<10} {'':>13} {fmt(base['logprob_margin']):>15} {fmt(base['preference_accuracy']):>15} "
          f"{'':>10} {'':>7}")  # fmt: skip
    for name, rate, values, wall in rows:
        print(f"{name:<10} {rate:>13.2e} {fmt(values['logprob_margin']):>15} "
              f"{fmt(values['preference_accuracy']):>15} {fmt(values['eval_loss']):>10} {wall:>7.0f}")  # fmt: skip

    best = sweep.best_trial
    base_values = rows[0][2]
    if best is None or base_values["logprob_margin"] is None:
        print("\nno comparison: the baseline or every trial failed")
        return
    best_values = figures(best)
    margin_gain = best_values["logprob_margin"] - base_values["logprob_margin"]
    print(f"\nbest: trial {best.trial_number}, learning rate {best.trial_params['learning_rate']:.2e} "
          f"({best.trial_params['learning_rate'] / default_rate:.1f}x the default {default_rate:.0e})")  # fmt: skip
    print(f"  logprob_margin       {fmt(best_values['logprob_margin'])} vs {fmt(base_values['logprob_margin'])} "
          f"(difference {margin_gain:+.4f} nats)")  # fmt: skip
    print(f"  preference_accuracy  {fmt(best_values['preference_accuracy'])} vs "
          f"{fmt(base_values['preference_accuracy'])}")  # fmt: skip
    print(f"  eval_loss            {fmt(best_values['eval_loss'])} vs {fmt(base_values['eval_loss'])}")
    untrained = base["logprob_margin"]
    if untrained is not None:
        moved_default = base_values["logprob_margin"] - untrained
        moved_best = best_values["logprob_margin"] - untrained
        ratio = f"{moved_best / moved_default:.1f}x" if moved_default else "n/a"
        print(f"  margin moved from the untrained model: {moved_best:+.4f} vs {moved_default:+.4f} nats ({ratio})")
    for name, round_ in (("defaults", baseline), (f"trial {best.trial_number}", best)):
        print(f"  verdict of {name} against the untrained model: {verdicts(round_)}")


def demo_world(model_dir: Path) -> tuple[Any, Any, Any]:
    """The demo's users and data, the demo model registered, and the datasets page's default build."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from labeling.models import Campaign
    from labeling.services.datasets import dataset_build, dataset_params
    from labeling.services.demo import REALISTIC_CAMPAIGN
    from training.services.registry import model_register

    call_command("migrate", verbosity=0)
    call_command("create_demo_users", stdout=open(os.devnull, "w"))  # noqa: SIM115 (the passwords are not needed)
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    manager = get_user_model().objects.get(username="manager")
    model = model_register(path=str(model_dir), name=model_dir.name, created_by=manager)
    campaign = Campaign.objects.get(slug=REALISTIC_CAMPAIGN.slug)
    # The build form's initial values (labeling.forms.DatasetBuildForm): Bradley-Terry, 10% held out.
    snapshot, _ = dataset_build(
        campaigns=[campaign], params=dataset_params(test_fraction=0.1, seed=0), created_by=manager, name="Demo"
    )
    return manager, model, snapshot


def run_queue(seconds: dict[int, float]) -> None:
    """Run queued training runs with the worker's own code until none is left, timing each round's."""
    from training.models import JobStatus, TrainingRun
    from training.worker import Worker

    worker = Worker(heartbeat_s=5, log=lambda message: None)
    while True:
        # The run the worker claims next: the oldest queued (training.services.jobs.job_claim_next).
        upcoming = TrainingRun.objects.filter(status=JobStatus.QUEUED).order_by("created_at", "id").first()
        if upcoming is None:
            return
        started = time.perf_counter()
        if not worker.run_once():
            raise RuntimeError(f"run {upcoming.pk} is queued but the worker claimed nothing")
        upcoming.refresh_from_db()
        elapsed = time.perf_counter() - started
        seconds[upcoming.round_id] += elapsed
        print(f"  run {upcoming.pk} ({upcoming.stage}, round {upcoming.round_id}): {upcoming.status} in {elapsed:.0f} s"
              + (f": {upcoming.error}" if upcoming.error else ""), flush=True)  # fmt: skip


def figures(round_: Any, *, reference: bool = False) -> dict[str, float | None]:
    """The round's held-out figures (``reference``: the untrained model's, from the same evaluation)."""
    from training.models import JobStatus

    prefix = "reference_" if reference else ""
    runs = {run.stage: run for run in round_.runs.filter(status=JobStatus.SUCCEEDED)}
    evaluation = runs["evaluate"].final_metrics if "evaluate" in runs else {}
    trained = runs["dpo"].final_metrics if "dpo" in runs else {}
    return {
        "logprob_margin": evaluation.get(f"{prefix}logprob_margin"),
        "preference_accuracy": evaluation.get(f"{prefix}preference_accuracy"),
        "eval_loss": None if reference else trained.get("eval_loss"),
    }


def verdicts(round_: Any) -> str:
    """The evaluate stage's verdict on the pairs' figures, with the change and its 95% interval."""
    from training.models import JobStatus

    run = round_.runs.filter(stage="evaluate", status=JobStatus.SUCCEEDED).first()
    report = (run.final_metrics or {}).get("report", {}) if run is not None else {}
    parts = []
    for figure in report.get("figures", []):
        if figure.get("name") in ("preference_accuracy", "logprob_margin"):
            interval = figure.get("change_interval") or figure.get("interval")
            parts.append(f"{figure['name']} {figure.get('verdict')} (interval {interval})")
    return "; ".join(parts) or "none"


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
