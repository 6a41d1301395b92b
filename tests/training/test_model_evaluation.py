"""A manager evaluates any registered model, alone or against another, from the models page and the API."""

from __future__ import annotations

import pytest

from labeling.datasets import BuildParams
from labeling.services.datasets import dataset_build
from training.models import ModelArtifact, Round, TrainingRun


@pytest.fixture
def manager_api(api_client, manager):
    api_client.force_authenticate(manager)
    return api_client


@pytest.fixture
def other_policy(db, tiny_model_dir, manager):
    return ModelArtifact.objects.create(name="tiny-other", path=str(tiny_model_dir), created_by=manager)


@pytest.fixture
def reward_model(db, tiny_model_dir, manager):
    return ModelArtifact.objects.create(
        name="tiny-rm", kind=ModelArtifact.Kind.REWARD_MODEL, path=str(tiny_model_dir), created_by=manager
    )


def evaluate(client, **fields):
    return client.post("/api/training/evaluations/", fields, format="json")


SHORT = {"advanced": {"max_new_tokens": 4}}


@pytest.mark.django_db(transaction=True)
def test_it_evaluates_a_policy_against_another_side_by_side(
    manager_api, tiny_model, other_policy, reward_model, preference_snapshot, worker
):
    response = evaluate(
        manager_api,
        model=tiny_model.pk,
        compare_with=other_policy.pk,
        dataset=preference_snapshot.pk,
        reward_model=reward_model.pk,
        settings=SHORT,
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["preset"] == "evaluation" and body["name"] == "tiny-llama against tiny-other"
    assert [(run["stage"], run["status"]) for run in body["runs"]] == [("evaluate", "queued")]
    assert worker.run_once()
    run = TrainingRun.objects.get(round_id=body["id"])
    assert run.status == "succeeded", run.error
    assert run.spec["reference_model"] == other_policy.path and run.spec["reward_model"] == reward_model.path
    verdict = manager_api.get(f"/api/training/rounds/{body['id']}/").json()["verdict"]
    names = {figure["name"] for figure in verdict["figures"]}
    assert {"preference_accuracy", "win_rate", "reward_model_accuracy", "perplexity", "kl_from_base"} <= names
    # The same weights on both sides: nothing is called better or worse.
    assert all(figure["verdict"] in (None, "no clear change") for figure in verdict["figures"])
    assert tiny_model.__class__.objects.get(pk=tiny_model.pk).evaluation["verdict"]["run"] == run.pk


@pytest.mark.django_db(transaction=True)
def test_it_scores_a_reward_model_on_a_snapshot_and_by_agreement(manager_api, reward_model, judged_campaign, worker):
    # No test split, and the reward model never trained on it: all of its pairs are held out.
    everything, _ = dataset_build(
        campaigns=[judged_campaign], params=BuildParams(method="majority"), created_by=judged_campaign.created_by
    )
    response = evaluate(manager_api, model=reward_model.pk, dataset=everything.pk)
    assert response.status_code == 201, response.json()
    assert worker.run_once()
    run = TrainingRun.objects.get(round_id=response.json()["id"])
    assert run.status == "succeeded", run.error
    report = run.final_metrics["report"]
    assert report["kind"] == "reward" and report["figures"][0]["name"] == "pairwise_accuracy"
    assert report["figures"][0]["n"] == everything.counts["pairs"]
    assert sum(level["pairs"] for level in report["by_agreement"]) == everything.counts["pairs"]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"compare_with": "self"}, "compare_with", "another one"),
        ({"compare_with": "rm"}, "compare_with", "a reward model is evaluated on its own"),
        ({"model": "rm", "dataset": None}, "dataset", "preference pairs"),
        ({"dataset": None}, "dataset", "a dataset snapshot, a text corpus, or benchmarks"),
        ({"evaluation_corpus": "/no/such/corpus.txt"}, "evaluation_corpus", "must be inside one of"),
        ({"settings": {"advanced": {"benchmarks": ["arc_easy"], "temperature": 0}}}, "settings", "temperature"),
    ],
)
def test_it_refuses_an_evaluation_that_cannot_run(
    manager_api, tiny_model, reward_model, preference_snapshot, fields, field, words
):
    chosen = {"self": tiny_model.pk, "rm": reward_model.pk}
    request = {"model": tiny_model.pk, "dataset": preference_snapshot.pk, **fields}
    request = {name: chosen.get(value, value) if isinstance(value, str) else value for name, value in request.items()}
    response = evaluate(manager_api, **request)
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"] and words in response.json()["detail"], response.json()
    assert not Round.objects.exists()


def test_a_reviewer_cannot_evaluate(api_client, make_user, tiny_model, preference_snapshot):
    api_client.force_authenticate(make_user("someone", role="reviewer"))
    assert evaluate(api_client, model=tiny_model.pk, dataset=preference_snapshot.pk).status_code == 403


def test_the_models_page_evaluates_a_model_against_the_model_it_was_trained_from(
    client, manager, tiny_model, other_policy, preference_snapshot
):
    client.force_login(manager)
    page = client.get(f"/training/models/{tiny_model.pk}/evaluate/")
    assert page.status_code == 200 and b"Evaluate tiny-llama" in page.content
    response = client.post(
        f"/training/models/{tiny_model.pk}/evaluate/",
        {"compare_with": other_policy.pk, "dataset": preference_snapshot.pk, "max_new_tokens": 8},
    )
    round_ = Round.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/training/rounds/{round_.pk}/"
    run = round_.runs.get()
    assert (run.input_model, round_.base_model) == (tiny_model, other_policy)
    assert run.params["advanced"]["max_new_tokens"] == 8


def test_a_reviewer_cannot_open_the_evaluation_page(client, make_user, tiny_model):
    client.force_login(make_user("someone-else", role="reviewer"))
    assert client.get(f"/training/models/{tiny_model.pk}/evaluate/").status_code == 403
    assert client.post(f"/training/models/{tiny_model.pk}/evaluate/", {"max_new_tokens": 8}).status_code == 403
    assert not Round.objects.exists()


def test_truthfulqa_runs_from_the_file_the_manager_names(client, manager, tiny_model, preference_snapshot, settings):
    settings.DATA_ROOTS = ["/data"]
    client.force_login(manager)
    url = f"/training/models/{tiny_model.pk}/evaluate/"
    without_file = client.post(url, {"benchmarks": ["truthfulqa_mc1"], "max_new_tokens": 8})
    assert without_file.status_code == 200 and "no package ships its data" in without_file.content.decode()
    assert not Round.objects.exists()
    response = client.post(
        url, {"benchmarks": ["truthfulqa_mc1"], "truthfulqa": " /data/truthfulqa_mc.jsonl ", "max_new_tokens": 8}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    advanced = Round.objects.get().runs.get().params["advanced"]
    assert advanced["benchmarks"] == ["truthfulqa_mc1"] and advanced["truthfulqa"] == "/data/truthfulqa_mc.jsonl"


def test_unticking_every_benchmark_runs_none(client, manager, tiny_model, preference_snapshot):
    client.force_login(manager)
    client.post(f"/training/models/{tiny_model.pk}/evaluate/", {"dataset": preference_snapshot.pk, "max_new_tokens": 8})
    assert Round.objects.get().runs.get().params["advanced"]["benchmarks"] == []


def test_an_evaluation_is_not_a_preset_of_the_round_api(manager_api, tiny_model, preference_snapshot):
    response = manager_api.post(
        "/api/training/rounds/", {"preset": "evaluation", "base_model": tiny_model.pk}, format="json"
    )
    body = response.json()
    assert response.status_code == 400 and "preset" in body.get("errors", body)


@pytest.mark.django_db(transaction=True)
def test_a_text_corpus_is_measured_paragraph_by_paragraph(manager_api, tiny_model, other_policy, worker, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"Paragraph {i}: the quick brown fox jumps over the lazy dog." for i in range(25)))
    response = evaluate(
        manager_api, model=tiny_model.pk, compare_with=other_policy.pk, evaluation_corpus=str(corpus), settings=SHORT
    )
    assert response.status_code == 201, response.json()
    assert worker.run_once()
    run = TrainingRun.objects.get(round_id=response.json()["id"])
    assert run.status == "succeeded", run.error
    perplexity = next(f for f in run.final_metrics["report"]["figures"] if f["name"] == "perplexity")
    assert perplexity["n"] == 25 and perplexity["verdict"] == "no clear change"
