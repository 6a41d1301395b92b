"""Stored paths follow an instance's files to a new VAR_DIR (after a restore elsewhere)."""

from pathlib import Path

from training.models import GenerationJob, ModelArtifact, Round, Stage, TrainingRun
from training.services.relocation import training_paths_relocate

OLD = Path("/srv/old-var")
NEW = Path("/data/rlhf/var")


def test_it_moves_paths_under_the_old_root_and_leaves_the_rest(db):
    inside = ModelArtifact.objects.create(name="inside", path=f"{OLD}/models/tiny")
    outside = ModelArtifact.objects.create(name="outside", path="/mnt/models/llama")
    # Only a whole path component matches: /srv/old-var2 is another folder.
    lookalike = ModelArtifact.objects.create(name="lookalike", path=f"{OLD}2/models/x")
    training_round = Round.objects.create(
        name="r", preset=Round.Preset.SINGLE, base_model=inside, pretrain_dataset=f"{OLD}/corpus.txt"
    )
    run = TrainingRun.objects.create(
        round=training_round,
        stage=Stage.SFT,
        input_model=inside,
        workdir=f"{OLD}/training/runs/1",
        resume_from="latest",
        checkpoints=[{"step": 1, "path": f"{OLD}/training/runs/1/checkpoint-1"}],
    )
    job = GenerationJob.objects.create(model=outside, workdir=f"{OLD}/training/generation/1")

    changed = training_paths_relocate(old_root=OLD, new_root=NEW)

    assert changed == 4
    for row in (inside, outside, lookalike, training_round, run, job):
        row.refresh_from_db()
    assert inside.path == f"{NEW}/models/tiny"
    assert outside.path == "/mnt/models/llama"
    assert lookalike.path == f"{OLD}2/models/x"
    assert training_round.pretrain_dataset == f"{NEW}/corpus.txt"
    assert run.workdir == f"{NEW}/training/runs/1" and run.resume_from == "latest"
    assert run.checkpoints == [{"step": 1, "path": f"{NEW}/training/runs/1/checkpoint-1"}]
    assert job.workdir == f"{NEW}/training/generation/1"
    assert training_paths_relocate(old_root=NEW, new_root=NEW) == 0


def test_a_queued_imports_stored_upload_follows_too(db, manager):
    from labeling.models import DataJob

    job = DataJob.objects.create(kind=DataJob.Kind.IMPORT, file_path=f"{OLD}/jobs/7/tasks.jsonl", created_by=manager)

    assert training_paths_relocate(old_root=OLD, new_root=NEW) == 1
    job.refresh_from_db()
    assert job.file_path == f"{NEW}/jobs/7/tasks.jsonl"
