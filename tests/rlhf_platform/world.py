"""One of every object a route can name, so every id in every URL resolves to something real.

The permission matrix and the API fuzz test request every route as each role; both need a
project, a campaign whose pool holds one reviewer and not another, a task that reviewer holds,
a judgement, a preference snapshot, a model, a round with its runs, and a generation job.
Building it takes a few hundred milliseconds, so those tests build it once per class
(``world_once``) and each test rolls back what it changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.test import override_settings
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from labeling.datasets import BuildParams
from labeling.models import Assignment, Campaign, DataJob, PreferenceDataset, Project
from labeling.services.datasets import dataset_build
from labeling.services.judgements import judgement_submit
from rlhf_platform.models import ApiToken
from rlhf_platform.roles import Role
from rlhf_platform.services import team_create, team_set_members, token_create
from tests.labeling.factories import claim_next, make_campaign, pairwise_rows
from training.models import Comparison, GenerationJob, JobStatus, ModelArtifact, Round, Stage, Sweep, TrainingRun

# The four callers of the matrix, in the order of its columns.
ANONYMOUS, OUTSIDER, INSIDER, MANAGER = "anonymous", "reviewer outside the pool", "reviewer in the pool", "manager"
CALLERS = (ANONYMOUS, OUTSIDER, INSIDER, MANAGER)


@dataclass(frozen=True)
class World:
    users: dict[str, AbstractBaseUser]  # by caller, anonymous excepted
    tokens: dict[str, str]  # API token key by caller, anonymous excepted
    token: ApiToken  # the manager's, for the routes that name a token
    project: Project
    campaign: Campaign
    assignment: Assignment  # held by the reviewer in the pool
    dataset: PreferenceDataset
    model: ModelArtifact
    round: Round
    run: TrainingRun
    generation_job: GenerationJob
    data_job: DataJob
    comparison: Comparison
    team: Group
    sweep: Sweep  # running, no trial asked yet

    def url_kwargs(self, route_name: str = "") -> dict[str, object]:
        """A value for every URL parameter name the routes use (``slug`` is the project's on project pages)."""
        return {
            "slug": self.project.slug if "project" in route_name else self.campaign.slug,
            "campaign_id": self.campaign.pk,
            "assignment_id": self.assignment.pk,
            "task_id": self.assignment.task_id,
            "project_id": self.project.pk,
            "dataset_id": self.dataset.pk,
            "model_id": self.model.pk,
            "round_id": self.round.pk,
            "run_id": self.run.pk,
            "comparison_id": self.comparison.pk,
            "job_id": self.data_job.pk if "data-job" in route_name else self.generation_job.pk,
            "token_id": self.token.pk,
            "user_id": self.users[OUTSIDER].pk,
            "team_id": self.team.pk,
            "sweep_id": self.sweep.pk,
            # A set-password link of the outside reviewer whose token is void.
            "uidb64": urlsafe_base64_encode(force_bytes(self.users[OUTSIDER].pk)),
            "token": "ccu2v2-0123456789abcdef0123456789abcdef",
        }


def _user(username: str, role: Role) -> AbstractBaseUser:
    user = get_user_model().objects.create_user(username=username, password="correct horse battery")
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def build_world(model_dir: Path) -> World:
    """Every object, made through the services where a user would make it."""
    manager = _user("matrix-manager", Role.MANAGER)
    insider = _user("matrix-insider", Role.REVIEWER)
    outsider = _user("matrix-outsider", Role.REVIEWER)
    campaign = make_campaign(manager=manager, reviewers=[insider], tasks=pairwise_rows(3))
    judged = claim_next(reviewer=insider, campaign=campaign)
    first_response = judged.task.responses.order_by("pk").first()
    judgement_submit(
        reviewer=insider,
        assignment_id=judged.pk,
        answers={"preference": {"winner": first_response.pk, "strength": 2}},
        client_submission_id=str(uuid.uuid4()),
        time_spent_ms=900,
    )
    held = claim_next(reviewer=insider, campaign=campaign)
    dataset, _ = dataset_build(campaigns=[campaign], params=BuildParams(method="majority"), created_by=manager)
    model = ModelArtifact.objects.create(name="matrix-base", path=str(model_dir), created_by=manager)
    training_round = Round.objects.create(
        name="Matrix round", preset=Round.Preset.SFT_DPO, base_model=model, dataset=dataset, launched_by=manager
    )
    run = TrainingRun.objects.create(
        round=training_round, position=0, stage=Stage.SFT, input_model=model, dataset=dataset, launched_by=manager
    )
    TrainingRun.objects.create(
        round=training_round,
        position=1,
        stage=Stage.DPO,
        depends_on=run,
        dataset=dataset,
        status=JobStatus.WAITING,
        launched_by=manager,
    )
    generation_job = GenerationJob.objects.create(
        model=model, prompts=[{"prompt": "Say hello."}], campaign_name="Matrix answers", launched_by=manager
    )
    data_job = DataJob.objects.create(
        kind=DataJob.Kind.DATASET_BUILD, parameters={"campaigns": [campaign.pk]}, created_by=manager
    )
    comparison = Comparison.objects.create(
        name="Matrix comparison", kind=Comparison.Kind.ADAPTERS, stage=Stage.SFT, variants=["sft"],
        base_model=model, dataset=dataset, max_steps=2, launched_by=manager,
    )  # fmt: skip
    training_round.comparison, training_round.variant = comparison, "lora"
    training_round.save(update_fields=["comparison", "variant"])
    team = team_create(name="Matrix team", actor=manager)
    sweep = Sweep.objects.create(
        name="Matrix sweep",
        stage=Stage.DPO,
        dataset=dataset,
        base_model=model,
        search_space=[{"name": "learning_rate", "type": "float", "low": 1e-6, "high": 1e-3, "log": True}],
        n_trials=2,
        metric="preference_accuracy",
        direction=Sweep.Direction.MAXIMIZE,
        launched_by=manager,
    )
    team_set_members(team_id=team.pk, usernames=[outsider.username], actor=manager)
    users = {OUTSIDER: outsider, INSIDER: insider, MANAGER: manager}
    created = {caller: token_create(user=user, name="matrix", expires_at=None) for caller, user in users.items()}
    return World(
        users=users,
        tokens={caller: made.key for caller, made in created.items()},
        token=created[MANAGER].token,
        project=campaign.project,
        campaign=campaign,
        assignment=held,
        dataset=dataset,
        model=model,
        round=training_round,
        run=run,
        generation_job=generation_job,
        data_job=data_job,
        comparison=comparison,
        team=team,
        sweep=sweep,
    )


def world_once(django_db_blocker, directory: Path) -> Iterator[World]:
    """Build the world in a transaction that is rolled back afterwards (the body of a class-scoped fixture).

    Each test inside runs in its own savepoint (pytest-django's ``django_db``), so what one
    request changes (a deleted campaign, a cancelled run) is gone before the next test. Files
    (snapshots, run directories) go under ``directory``. Not for transactional tests: they
    flush tables, and other connections would wait on this transaction's locks.
    """
    settings = override_settings(
        DATASETS_DIR=directory / "datasets", TRAINING_DIR=directory / "training", MEDIA_ROOT=directory / "media"
    )
    with django_db_blocker.unblock(), settings:
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            model_dir = directory / "model"
            model_dir.mkdir(parents=True, exist_ok=True)
            yield build_world(model_dir)
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
