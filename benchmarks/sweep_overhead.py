"""What a sweep adds to each trial: the same round run alone and as a trial of a sweep, in one process.

A trial is a round (a DPO stage, then its evaluation) like any other; the sweep adds its launch
(the study rebuilt from the rows and asked, under the sweep's lock), the pruner consulted on each
of the trial's metric events, and, as the round ends, its value read and the next trial asked and
queued. This script runs ``--trials`` trials of a median-pruned sweep on a tiny random Llama and,
between them, the same round launched alone with the trial's own parameters (the worker's queue
alternates them: trial, single, trial, ...), each by the real worker with the engine in a
subprocess. It prints each pair's seconds, the medians, the per-trial overhead in seconds and as a
ratio (trial / single), and the time spent inside the sweep's own functions (launch, pruning
checks, trial end), measured directly.

    .venv/bin/python benchmarks/sweep_overhead.py --threads 1

Everything lives in a temporary VAR_DIR with its own SQLite database; nothing else is touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

SETTINGS = {"adapter": "full", "max_steps": 6, "batch_size": 8, "max_length": 48, "logging_steps": 1}
EVALUATION = {"evaluate": {"advanced": {"max_new_tokens": 4, "examples": 0}}}
# A narrow range: every trial does the same work, so the pairs compare like with like.
SEARCH_SPACE = [{"name": "learning_rate", "type": "float", "low": 1e-5, "high": 2e-5, "log": True}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="trials of the sweep, each paired with a single round")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each engine process")
    parser.add_argument("--pairs", type=int, default=48, help="preference pairs in the snapshot")
    arguments = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="sweep-overhead-"))
    os.environ.update(
        {
            "VAR_DIR": str(var_dir),
            "DEBUG": "1",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "TRAINING_ENGINE_THREADS": str(arguments.threads),
            "TRAINING_HEARTBEAT_S": "1",
            "DJANGO_SETTINGS_MODULE": "rlhf_platform.settings",
        }
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    manager, model, snapshot = world(var_dir, arguments.pairs)
    timers = instrument()

    from training.models import JobStatus, Round, Sweep, TrainingRun
    from training.services.rounds import round_launch
    from training.services.sweeps import sweep_launch
    from training.worker import Worker

    worker = Worker(heartbeat_s=1, log=lambda message: None)
    print(f"tiny Llama, DPO {SETTINGS['max_steps']} steps + evaluation per round, {arguments.threads} torch thread(s), "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    started = time.perf_counter()
    sweep = sweep_launch(
        stage="dpo",
        dataset=snapshot,
        base_model=model,
        search_space=SEARCH_SPACE,
        n_trials=arguments.trials,
        metric="logprob_margin",
        pruner=Sweep.Pruner.MEDIAN,
        prune_on="loss",
        launched_by=manager,
        settings=SETTINGS,
        stage_settings=EVALUATION,
    )
    timers["sweep_launch (with trial 0's round launch)"].append(time.perf_counter() - started)

    seconds: dict[int, float] = defaultdict(float)  # round id -> worker seconds of its runs
    pairs: list[tuple[Round, Round]] = []
    for number in range(arguments.trials):
        trial = sweep.trials.get(trial_number=number)
        started = time.perf_counter()
        single = round_launch(
            name=f"single {number}",
            preset=Round.Preset.SINGLE,
            stage="dpo",
            base_model=model,
            dataset=snapshot,
            launched_by=manager,
            settings=SETTINGS,
            stage_settings={**EVALUATION, "dpo": {"learning_rate": trial.trial_params["learning_rate"]}},
        )
        timers["round_launch (a single round)"].append(time.perf_counter() - started)
        for _ in range(4):  # the trial's two runs, then the single round's two (the queue is FIFO)
            # The run the worker claims next: the oldest queued (training.services.jobs.job_claim_next).
            upcoming = TrainingRun.objects.filter(status=JobStatus.QUEUED).order_by("created_at", "id").first()
            started = time.perf_counter()
            if not worker.run_once():
                raise RuntimeError("the queue ran dry")
            seconds[upcoming.round_id] += time.perf_counter() - started
        trial.refresh_from_db()
        pairs.append((trial, single))
        print(f"trial {number}: {seconds[trial.pk]:6.2f} s ({trial.trial_state})   single: {seconds[single.pk]:6.2f} s")
    sweep.refresh_from_db()

    comparable = [(trial, single) for trial, single in pairs if trial.trial_state == "complete"]
    trial_median = statistics.median(seconds[trial.pk] for trial, _ in comparable)
    single_median = statistics.median(seconds[single.pk] for _, single in comparable)
    print(f"\n{len(comparable)} comparable pairs (pruned trials left out); sweep {sweep.status}")
    print(f"median round alone: {single_median:.2f} s, as a trial: {trial_median:.2f} s")
    overhead = trial_median - single_median
    print(f"per-trial overhead (wall, noisy): {overhead:+.2f} s, ratio {trial_median / single_median:.3f}")
    print("\ntime inside the sweep's own functions (measured directly):")
    for name, values in timers.items():
        total_ms, each_ms = sum(values) * 1000, statistics.mean(values) * 1000
        print(f"  {name:<46} {len(values):>4} calls  {total_ms:8.1f} ms  {each_ms:7.2f} ms each")
    own = sum(sum(values) for name, values in timers.items() if not name.startswith("round_launch"))
    print(f"sweep's own time per trial: {own / arguments.trials * 1000:.1f} ms, "
          f"{own / arguments.trials / single_median:.2%} of a {single_median:.1f} s round")  # fmt: skip


def instrument() -> dict[str, list[float]]:
    """Time the sweep's hooks where the worker's code calls them (its pruning check and its trial end)."""
    from training.services import runs, sweeps

    timers: dict[str, list[float]] = defaultdict(list)

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(**arguments: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(**arguments)
            finally:
                timers[name].append(time.perf_counter() - started)

        return wrapper

    runs.sweep_trial_report = timed("sweep_trial_report (pruning check per event)", runs.sweep_trial_report)
    # rounds.py imports it at call time, from the module.
    sweeps.sweep_trial_ended = timed("sweep_trial_ended (tell, ask, queue the next)", sweeps.sweep_trial_ended)
    return timers


def world(var_dir: Path, pairs: int) -> tuple[Any, Any, Any]:
    """A manager, a tiny model in the model roots, and a snapshot of marker pairs with a held-out third."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from labeling.datasets import BuildParams
    from labeling.services.datasets import dataset_build
    from labeling.services.judgements import judgement_submit
    from rlhf_platform.roles import Role
    from tests.labeling.factories import claim_next, make_campaign
    from tests.tiny_model import build_tiny_causal_lm
    from tests.training.engine.conftest import marker_preferences
    from training.services.registry import model_register

    users = get_user_model().objects
    manager = users.create_user("bench-manager")  # no password: nobody signs in
    manager.groups.add(Group.objects.get_or_create(name=Role.MANAGER)[0])
    reviewer = users.create_user("bench-reviewer")
    reviewer.groups.add(Group.objects.get_or_create(name=Role.REVIEWER)[0])
    model_dir = build_tiny_causal_lm(var_dir / "models" / "tiny")
    model = model_register(path=str(model_dir), name="tiny", created_by=manager)
    rows = [
        {"id": f"m{i}", "prompt": pair["prompt"], "responses": [pair["rejected"], pair["chosen"]]}
        for i, pair in enumerate(marker_preferences(pairs, seed=0))
    ]
    campaign = make_campaign(manager=manager, reviewers=[reviewer], tasks=rows, overlap=1, name="Marker")
    while (assignment := claim_next(reviewer=reviewer, campaign=campaign)) is not None:
        responses = dict(assignment.task.responses.values_list("pk", "text"))
        winner = next(pk for pk, text in responses.items() if "Paris" in text)
        judgement_submit(
            reviewer=reviewer,
            assignment_id=assignment.pk,
            answers={"preference": {"winner": winner, "strength": 2}},
            client_submission_id=str(uuid.uuid4()),
            time_spent_ms=800,
        )
    snapshot, _ = dataset_build(
        campaigns=[campaign], params=BuildParams(method="majority", test_fraction=0.33, seed=1), created_by=manager
    )
    return manager, model, snapshot


if __name__ == "__main__":
    main()
