"""Generation jobs that cannot run are refused with a clear message, and nothing is queued."""

from __future__ import annotations

import pytest

from labeling.services.campaigns import project_create
from training.errors import TrainingError
from training.models import GenerationJob, ModelArtifact
from training.services.generation import generation_job_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(manager):
    return project_create(name="Next round", created_by=manager)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"prompts": []}, "prompts", "either a campaign"),
        ({"prompts": ["fine", "  "]}, "prompts", "Prompt 2 is empty"),
        ({"prompts": ["hi"], "params": {"num_candidates": 0}}, "params", "num_candidates"),
        ({"prompts": ["hi"], "params": {"beam_width": 3}}, "params", "Unknown generation setting"),
        ({"prompts": ["hi"], "campaign_name": " "}, "campaign_name", "Name the campaign"),
    ],
)
def test_it_refuses_bad_generation_jobs(tiny_model, manager, project, fields, field, words):
    arguments = {"model": tiny_model, "campaign_name": "round 2", "project": project, "launched_by": manager}
    with pytest.raises(TrainingError, match=words) as refused:
        generation_job_create(**{**arguments, **fields})
    assert field in refused.value.errors
    assert not GenerationJob.objects.exists()


def test_it_refuses_a_reward_model_as_the_generator(tiny_model, manager, project):
    reward = ModelArtifact.objects.create(name="rm", kind="reward_model", path=tiny_model.path)
    with pytest.raises(TrainingError, match="reward model"):
        generation_job_create(model=reward, campaign_name="x", project=project, launched_by=manager, prompts=["hi"])


def test_it_queues_imported_prompts_with_ids(tiny_model, manager, project):
    job = generation_job_create(
        model=tiny_model,
        campaign_name="round 2",
        project=project,
        launched_by=manager,
        prompts=["Say hi", {"id": "x1", "prompt": [{"role": "user", "content": "Hello?"}]}],
        params={"num_candidates": 2, "max_new_tokens": 8},
    )
    assert job.status == "queued" and [row["id"] for row in job.prompts] == ["p1", "x1"]
    assert job.params == {"num_candidates": 2, "max_new_tokens": 8, "project_id": project.pk}
