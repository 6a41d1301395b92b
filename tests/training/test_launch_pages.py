"""The launch-a-round and generate-candidates forms: checked before anything is queued."""

import pytest

from tests.tiny_model import build_tiny_causal_lm
from training.models import GenerationJob, JobStatus, ModelArtifact, Round


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def base_model(db, tiny_model_dir):
    return ModelArtifact.objects.create(name="tiny", path=str(tiny_model_dir))


def test_a_bad_launch_shows_the_errors_on_their_fields_and_queues_nothing(base_model, manager_client):
    response = manager_client.post(
        "/training/rounds/new/",
        {"preset": "single", "stage": "dpo", "base_model": base_model.pk, "adapter": "lora", "advanced": ""},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["dataset"] == ["This field is required."]
    broken_json = manager_client.post(
        "/training/rounds/new/",
        {"preset": "sft_dpo", "base_model": base_model.pk, "adapter": "lora", "advanced": '{"beta": '},
    )
    assert "Not valid JSON" in broken_json.context["form"].errors["advanced"][0]
    assert not Round.objects.exists()


def test_a_manager_launches_a_pretraining_round_from_the_form(base_model, manager_client, reviewer_client, tmp_path):
    text = tmp_path / "domain.txt"
    text.write_text("The quick brown fox jumps over the lazy dog.\n" * 20)
    form = {
        "preset": "single",
        "stage": "pretrain",
        "base_model": base_model.pk,
        "pretrain_dataset": str(text),
        "adapter": "full",
        "max_steps": "2",
        "learning_rate": "0.001",
        "advanced": '{"max_length": 32}',
    }
    assert reviewer_client.post("/training/rounds/new/", form).status_code == 403
    page = manager_client.get("/training/rounds/new/").content.decode()
    assert "Engine defaults" in page and "lr_scheduler" in page
    response = manager_client.post("/training/rounds/new/", form)
    training_round = Round.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/training/rounds/{training_round.pk}/"
    run = training_round.runs.get()
    assert (run.stage, run.status, run.text_dataset) == ("pretrain", JobStatus.QUEUED, str(text))
    assert run.params["max_steps"] == 2 and run.params["advanced"] == {"max_length": 32}
    assert manager_client.get(response["Location"]).status_code == 200


def test_generation_needs_one_prompt_source_and_a_campaign_name(base_model, manager_client):
    response = manager_client.post(
        "/training/generate/",
        {"model": base_model.pk, "campaign_name": "Next round", "num_candidates": 2, "temperature": 0.8,
         "top_p": 0.95, "max_new_tokens": 8},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not GenerationJob.objects.exists()


def test_a_queued_generation_job_opens_its_own_page(base_model, manager_client, judged_campaign):
    response = manager_client.post(
        "/training/generate/",
        {"model": base_model.pk, "source_campaign": judged_campaign.pk, "campaign_name": "Next round",
         "num_candidates": 1, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 8},
    )  # fmt: skip
    job = GenerationJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/training/generation/{job.pk}/"
    assert "Next round" in manager_client.get(response["Location"]).content.decode()
