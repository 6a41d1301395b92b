"""Fixtures for the training app: a tiny local model, a real preference snapshot, and a worker.

Engine subprocesses run with one torch thread (tiny models train ~50x faster than on two
contended cores) and the worker heartbeats twice a second, so cancel requests land quickly.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from labeling.datasets import BuildParams
from labeling.services.datasets import dataset_build
from labeling.services.judgements import judgement_submit
from rlhf_platform.roles import Role
from tests.labeling.factories import claim_next, make_campaign
from tests.tiny_model import build_tiny_causal_lm
from training.models import JobStatus, ModelArtifact, Round, Stage, TrainingRun
from training.services.registry import model_register
from training.worker import Worker

# Share of the judged campaign's prompts the snapshots hold out.
HELD_OUT = 0.25
# Hyperparameters that keep a CPU stage to a few seconds.
FAST_SETTINGS = {
    "adapter": "full",
    "max_steps": 2,
    "batch_size": 2,
    "max_length": 64,
    "logging_steps": 1,
    "save_steps": 1,
}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(autouse=True)
def training_settings(settings, tmp_path, tmp_path_factory):
    # Tests keep their models and corpora in pytest's temporary directories: those are the roots
    # the pages and the API may name (tests of the confinement itself narrow them).
    settings.MODEL_ROOTS = [tmp_path_factory.getbasetemp()]
    settings.DATA_ROOTS = [tmp_path_factory.getbasetemp()]
    settings.TRAINING_UPLOADS_DIR = tmp_path / "data" / "uploads"
    settings.DATASETS_DIR = tmp_path / "datasets"
    settings.TRAINING_DIR = tmp_path / "training"
    # No benchmark data, whatever `make demo` fetched into this checkout's var/: evaluate stages in
    # tests measure the held-out data only (benchmark tests give their own files), as on CI.
    settings.BENCHMARK_DATA_DIR = tmp_path / "benchmark-data"
    settings.TRAINING_ENGINE_THREADS = 1
    settings.TRAINING_HEARTBEAT_S = 1
    return settings


@pytest.fixture
def tiny_model(db, tiny_model_dir, manager):
    return model_register(path=str(tiny_model_dir), name="tiny-llama", created_by=manager)


@pytest.fixture
def reviewers(make_user):
    return [make_user(f"reviewer-{i}", role=Role.REVIEWER) for i in range(2)]


def review_all(reviewer, campaign) -> None:
    """The reviewer prefers the response that starts with 'good' on every task left for them."""
    while (assignment := claim_next(reviewer=reviewer, campaign=campaign)) is not None:
        texts = dict(assignment.task.responses.values_list("pk", "text"))
        winner = next(pk for pk, text in texts.items() if text.startswith("good"))
        judgement_submit(
            reviewer=reviewer,
            assignment_id=assignment.pk,
            answers={"preference": {"winner": winner, "strength": 2}},
            client_submission_id=str(uuid.uuid4()),
            time_spent_ms=900,
        )


@pytest.fixture
def judged_campaign(manager, reviewers):
    """Imported tasks (prompt + a good and a bad answer) judged by two reviewers."""
    rows = [
        {
            "id": f"q{i}",
            "prompt": f"Question {i}: what is the capital of France?",
            "responses": [f"bad {i}", f"good {i} Paris"],
        }
        for i in range(8)
    ]
    campaign = make_campaign(manager=manager, reviewers=reviewers, tasks=rows, overlap=2)
    for reviewer in reviewers:
        review_all(reviewer, campaign)
    return campaign


@pytest.fixture
def preference_snapshot(judged_campaign, manager):
    """Majority pairs, with a quarter of the prompts held out (the evaluate stage's data)."""
    params = BuildParams(method="majority", test_fraction=HELD_OUT)
    dataset, _ = dataset_build(campaigns=[judged_campaign], params=params, created_by=manager)
    return dataset


@pytest.fixture
def sft_snapshot(judged_campaign, manager):
    dataset, _ = dataset_build(
        campaigns=[judged_campaign],
        params=BuildParams(kind="sft", method="majority", test_fraction=HELD_OUT),
        created_by=manager,
    )
    return dataset


@pytest.fixture
def worker() -> Worker:
    return Worker(heartbeat_s=0.5, log=lambda message: None)


@pytest.fixture
def training_round(db, tmp_path) -> Round:
    """A round of two stages on a stand-in base model: SFT queued, DPO waiting for it."""
    base = ModelArtifact.objects.create(name="tiny-base", path=str(tmp_path))
    training_round = Round.objects.create(name="Round 1", preset=Round.Preset.SFT_DPO, base_model=base)
    sft = TrainingRun.objects.create(round=training_round, position=0, stage=Stage.SFT, input_model=base)
    TrainingRun.objects.create(
        round=training_round, position=1, stage=Stage.DPO, depends_on=sft, status=JobStatus.WAITING
    )
    return training_round


def first_run(training_round: Round) -> TrainingRun:
    return training_round.runs.order_by("position").first()


def checkpoints_on_disk(run: TrainingRun) -> list[str]:
    """Complete checkpoint directories of the run, oldest first (the Trainer writes trainer_state.json last)."""
    found = (Path(run.workdir) / "output" / "checkpoints").glob("checkpoint-*")
    complete = [path for path in found if (path / "trainer_state.json").is_file()]
    return [str(path) for path in sorted(complete, key=lambda path: int(path.name.split("-")[1]))]
