"""Blind A/B reviews of a new policy against the previous one: the pairwise campaign a generation job
makes, starting it in one step, and the new model's win rate as judgements arrive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.urls import reverse

from labeling.errors import LabelingError
from labeling.models import Campaign, CampaignStatus, Judgement, Response, Task
from labeling.services.campaigns import project_create
from labeling.services.demo import PAIRWISE_QUESTIONS
from rlhf_platform.roles import Role
from tests.labeling.factories import RANKING_SCHEMA, make_campaign
from tests.labeling.simulation import simulate_pairwise_reviews
from training import selectors
from training.errors import Conflict, TrainingError
from training.models import GenerationJob, JobStatus, ModelArtifact
from training.services.generation import (
    generation_campaign_start,
    generation_job_create,
    generation_job_succeed,
    generation_prepare,
)

pytestmark = pytest.mark.django_db

NEW_WINS = 0.7


@pytest.fixture
def previous(tiny_model):
    """The policy before the new one: same weights on disk, another registered model."""
    return ModelArtifact.objects.create(name="tiny-llama-previous", path=tiny_model.path)


@pytest.fixture
def pool(make_user):
    return [make_user(f"ab-reviewer-{index}", role=Role.REVIEWER) for index in range(3)]


@pytest.fixture
def source_campaign(manager, pool):
    """Where the prompts come from: 40 prompts, 2 gold tasks, a pool of two, guidelines, overlap 2."""
    rows = [{"id": f"q{i}", "prompt": f"Question {i}?", "responses": [f"first {i}", f"second {i}"]} for i in range(40)]
    rows += [
        {"id": f"g{i}", "prompt": f"Gold {i}?", "responses": [f"right {i}", f"wrong {i}"], "gold": {"preferred": 0}}
        for i in range(2)
    ]
    return make_campaign(
        manager=manager,
        reviewers=pool[:2],
        tasks=rows,
        schema=PAIRWISE_QUESTIONS,
        name="Round 1",
        guidelines="Prefer the **correct** answer.",
        overlap=2,
        gold_rate=0.2,
        lease_seconds=600,
    )


def finished_job(*, model, manager, compare_with=None, k=1, **source) -> GenerationJob:
    """A job the engine ran: candidates written as the generate stage writes them, then the job's success."""
    job = generation_job_create(
        model=model,
        compare_with=compare_with,
        campaign_name="Round 2 A/B",
        launched_by=manager,
        params={"num_candidates": k, "max_new_tokens": 8},
        **source,
    )
    generation_prepare(job=job)
    prompts = [json.loads(line) for line in (Path(job.workdir) / "prompts.jsonl").read_text().splitlines()]
    artifacts = [model] if compare_with is None else [model, compare_with]
    for index, artifact in enumerate(artifacts):
        out = Path(job.workdir) / f"output-{index}"
        out.mkdir(parents=True)
        tasks = [
            {
                "id": row["id"],
                "prompt": row["prompt"],
                "responses": [
                    {
                        "text": f"{artifact.name} answer {c} to {row['id']}",
                        "model": artifact.name,
                        "meta": {"top_p": 1.0},
                    }
                    for c in range(k)
                ],
                "meta": row["meta"],
            }
            for row in prompts
        ]
        (out / "candidates.jsonl").write_text("".join(json.dumps(task) + "\n" for task in tasks))
    generation_job_succeed(job=job, engine_results=[{"tasks": len(prompts)}] * len(artifacts), log_tail="done")
    return GenerationJob.objects.select_related("model", "compare_with", "campaign", "source_campaign").get(pk=job.pk)


def answer_models(task: Task) -> list[tuple[str, int]]:
    return [(r.model_name, r.meta["model_id"]) for r in task.responses.order_by("position")]


# --- the A/B campaign ----------------------------------------------------------------------------------


def test_an_ab_job_pairs_one_answer_of_each_model_per_task_in_random_order(
    tiny_model, previous, manager, source_campaign
):
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, source_campaign=source_campaign, k=2)
    tasks = list(job.campaign.tasks.order_by("id"))
    # 40 prompts (gold ones are not prompts), K = 2: candidate i of each model, one task each.
    assert len(tasks) == 80 and job.result["responses_per_task"] == 2
    assert {task.external_id for task in tasks} == {f"q{i}#{c}" for i in range(40) for c in (1, 2)}
    new, old = (tiny_model.name, tiny_model.pk), (previous.name, previous.pk)
    orders = [answer_models(task) for task in tasks]
    assert all(sorted(order) == sorted([new, old]) for order in orders)
    # The order is drawn per task: both appear, neither always first.
    first_is_new = sum(order[0] == new for order in orders)
    assert 25 < first_is_new < 55
    for task in tasks:
        candidate = task.meta["candidate"]
        assert {r.text.split(" answer ")[1] for r in task.responses.all()} == {
            f"{candidate} to {task.meta['prompt_id']}"
        }
    # A pairwise question that allows ties and "both bad", beside the source's other questions.
    questions = job.campaign.question_schema["questions"]
    assert [q["type"] for q in questions] == ["pairwise", "flags", "text"]
    assert questions[0]["allow_tie"] is True and questions[0]["allow_both_bad"] is True
    assert job.campaign.status == CampaignStatus.DRAFT


def test_an_ab_job_asks_the_pairwise_question_even_when_its_prompts_came_from_a_ranking(tiny_model, previous, manager):
    rows = [{"id": f"r{i}", "prompt": f"Rank {i}", "responses": ["a", "b", "c"]} for i in range(3)]
    ranked = make_campaign(manager=manager, tasks=rows, schema=RANKING_SCHEMA)
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, source_campaign=ranked)
    questions = job.campaign.question_schema["questions"]
    assert [(q["id"], q["type"]) for q in questions] == [("preference", "pairwise"), ("why", "text")]
    assert all(task.response_count == 2 for task in job.campaign.tasks.all())


def test_a_job_without_compare_with_still_puts_its_candidates_in_one_task(tiny_model, manager):
    project = project_create(name="Solo", created_by=manager)
    job = finished_job(model=tiny_model, manager=manager, project=project, prompts=["a", "b"], k=3)
    assert [task.response_count for task in job.campaign.tasks.all()] == [3, 3]
    assert job.campaign.question_schema["questions"][0]["type"] == "ranking"
    assert selectors.ab_result_for_job(job=job) is None


@pytest.mark.django_db(transaction=True)  # the worker's heartbeat thread writes beside the test
def test_the_engine_run_of_an_ab_job_makes_the_same_shape(tiny_model, previous, manager, worker):
    project = project_create(name="Next round", created_by=manager)
    job = generation_job_create(
        model=tiny_model,
        compare_with=previous,
        campaign_name="A/B",
        project=project,
        launched_by=manager,
        prompts=["Say hi", "Say bye"],
        params={"num_candidates": 2, "max_new_tokens": 4, "batch_size": 2},
    )
    assert worker.run_once()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    tasks = list(job.campaign.tasks.all())
    assert len(tasks) == 4
    for task in tasks:
        assert sorted(model_id for _name, model_id in answer_models(task)) == sorted([tiny_model.pk, previous.pk])


# --- starting it in one step ---------------------------------------------------------------------------


def test_it_starts_the_campaign_set_up_like_its_source(tiny_model, previous, manager, source_campaign, pool):
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, source_campaign=source_campaign)
    campaign = generation_campaign_start(job=job)
    campaign = Campaign.objects.get(pk=campaign.pk)
    assert campaign.status == CampaignStatus.ACTIVE
    assert sorted(campaign.reviewers.values_list("username", flat=True)) == ["ab-reviewer-0", "ab-reviewer-1"]
    assert (campaign.guidelines, campaign.overlap, campaign.lease_seconds) == ("Prefer the **correct** answer.", 2, 600)
    # The source's gold tasks came along, with their answers, so the gold rate measures something.
    gold = list(campaign.tasks.filter(is_gold=True).order_by("external_id"))
    assert [task.external_id for task in gold] == ["gold/g0", "gold/g1"]
    assert gold[0].gold == {"preferred": 0} and gold[0].responses.get(position=0).text == "right 0"
    assert campaign.gold_rate == 0.2
    assert campaign.tasks.filter(is_gold=False).count() == 40

    with pytest.raises(Conflict, match="already been started"):
        generation_campaign_start(job=job)


def test_the_copied_pool_leaves_out_people_who_are_no_longer_reviewers(
    tiny_model, previous, manager, source_campaign, pool
):
    pool[1].is_active = False
    pool[1].save(update_fields=["is_active"])
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, source_campaign=source_campaign)
    campaign = generation_campaign_start(job=job)
    assert list(campaign.reviewers.values_list("username", flat=True)) == ["ab-reviewer-0"]


def test_it_starts_nothing_before_the_job_has_its_campaign(tiny_model, previous, manager, source_campaign):
    job = generation_job_create(
        model=tiny_model, compare_with=previous, campaign_name="x", launched_by=manager, source_campaign=source_campaign
    )
    with pytest.raises(Conflict, match="no campaign to start yet: it is queued"):
        generation_campaign_start(job=job)


def test_imported_prompts_need_reviewers_chosen(tiny_model, previous, manager, pool):
    project = project_create(name="Imported", created_by=manager)
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, project=project, prompts=["a", "b"])
    with pytest.raises(TrainingError, match="Choose the reviewers") as refused:
        generation_campaign_start(job=job)
    assert "reviewers" in refused.value.errors
    campaign = generation_campaign_start(job=job, reviewers=["ab-reviewer-2"])
    assert campaign.status == CampaignStatus.ACTIVE and campaign.gold_rate == 0.0
    assert list(campaign.reviewers.values_list("username", flat=True)) == ["ab-reviewer-2"]


def test_a_failed_start_leaves_the_draft_as_it_was(tiny_model, previous, manager, source_campaign):
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, source_campaign=source_campaign)
    with pytest.raises(LabelingError, match="Not active reviewers: nobody") as refused:
        generation_campaign_start(job=job, reviewers=["nobody"])
    assert refused.value.status_code == 400 and "reviewers" in refused.value.errors
    campaign = Campaign.objects.get(pk=job.campaign_id)
    assert campaign.status == CampaignStatus.DRAFT and campaign.gold_rate == 0.0 and campaign.overlap == 3
    assert not campaign.tasks.filter(is_gold=True).exists() and not campaign.reviewers.exists()


def test_the_job_page_starts_it_in_one_click(tiny_model, previous, manager, source_campaign, manager_client):
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, source_campaign=source_campaign)
    home = manager_client.get(reverse("training:home")).content.decode()
    url = reverse("training:generation-job", kwargs={"job_id": job.pk})
    assert f'href="{url}"' in home
    page = manager_client.get(url).content.decode()
    assert "Start the A/B review" in page and "its 2 gold tasks at a gold rate of 0.2" in page
    assert 'value="ab-reviewer-0" checked' in page and 'value="ab-reviewer-2">' in page

    start = reverse("training:generation-job-start", kwargs={"job_id": job.pk})
    response = manager_client.post(start, {"reviewers": ["ab-reviewer-0", "ab-reviewer-1"]}, follow=True)
    assert response.redirect_chain[-1][0] == url
    assert "is active: its 2 reviewers can start" in response.content.decode()
    assert Campaign.objects.get(pk=job.campaign_id).status == CampaignStatus.ACTIVE
    assert "Start the A/B review" not in response.content.decode()

    again = manager_client.post(start, {"reviewers": ["ab-reviewer-0"]}, follow=True).content.decode()
    assert "has already been started: it is active" in again


def test_the_api_starts_it_once(tiny_model, previous, manager, source_campaign, api_client):
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, source_campaign=source_campaign)
    api_client.force_authenticate(manager)
    url = f"/api/training/generation-jobs/{job.pk}/start-review/"
    response = api_client.post(url, {"reviewers": ["ab-reviewer-2"]}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["reviewers"], body["gold_rate"], body["overlap"]) == (
        "active",
        ["ab-reviewer-2"],
        0.2,
        2,
    )
    again = api_client.post(url, {}, format="json")
    assert again.status_code == 409 and "already been started" in again.json()["detail"]


def test_the_api_names_a_bad_reviewer_field(tiny_model, previous, manager, source_campaign, api_client):
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, source_campaign=source_campaign)
    api_client.force_authenticate(manager)
    response = api_client.post(f"/api/training/generation-jobs/{job.pk}/start-review/", {"reviewers": ["ghost"]})
    assert response.status_code == 400 and "reviewers" in response.json()["errors"]


# --- the result ----------------------------------------------------------------------------------------


@pytest.fixture
def reviewed_job(tiny_model, previous, manager, make_user, source_campaign):
    """200 A/B tasks judged twice by reviewers who prefer the new model's answer 70% of the time
    (and call both answers bad 5% of the time)."""
    prompts = [{"id": f"p{i}", "prompt": f"Prompt {i}"} for i in range(200)]
    project = source_campaign.project
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, project=project, prompts=prompts)
    reviewers = [make_user(f"sim-{index}", role=Role.REVIEWER) for index in range(2)]
    generation_campaign_start(job=job, reviewers=[reviewer.get_username() for reviewer in reviewers])
    campaign = Campaign.objects.get(pk=job.campaign_id)
    made = simulate_pairwise_reviews(
        campaign,
        reviewers,
        first_wins=lambda first, _second: NEW_WINS if first == tiny_model.name else 1 - NEW_WINS,
        seed=70,
        both_bad_rate=0.05,
    )
    assert made == 400
    return job


def test_the_win_rate_interval_holds_the_reviewers_preference(reviewed_job):
    result = selectors.ab_result_for_job(job=reviewed_job)
    assert result.n_judgements == 400 and 0 < result.both_bad < 40
    assert result.n == result.wins + result.losses == 400 - result.both_bad
    assert result.low < NEW_WINS < result.high
    assert result.high - result.low < 0.1
    assert result.verdict == "better"
    assert result.win_rate == pytest.approx(result.wins / result.n)
    # The same battles, pooled over every job that paired the two models.
    pooled = selectors.ab_result_for_models(new_model=reviewed_job.model, old_model=reviewed_job.compare_with)
    assert (pooled.wins, pooled.losses, pooled.both_bad) == (result.wins, result.losses, result.both_bad)
    # And from the old model's side: it loses what the new one wins.
    reversed_ = selectors.ab_result_for_models(new_model=reviewed_job.compare_with, old_model=reviewed_job.model)
    assert (reversed_.wins, reversed_.losses) == (result.losses, result.wins)


def test_the_pages_and_the_api_show_the_result(reviewed_job, manager_client, api_client, manager):
    result = selectors.ab_result_for_job(job=reviewed_job)
    percent = f"{round(100 * result.win_rate)}%"
    interval = f"{round(100 * result.low)}\N{EN DASH}{round(100 * result.high)}%"
    job_page = manager_client.get(reverse("training:generation-job", kwargs={"job_id": reviewed_job.pk}))
    live = manager_client.get(reverse("training:generation-job-live", kwargs={"job_id": reviewed_job.pk}))
    for page in (job_page.content.decode(), live.content.decode()):
        assert f'data-field="win-rate">{percent}</strong>' in page
        assert f'data-field="interval">{interval}</span>' in page and f'data-field="n">{result.n}</span>' in page
        assert "badge-verdict-better" in page
    assert "data-poll-url" in job_page.content.decode() and "training/poll.js" in job_page.content.decode()

    for model in (reviewed_job.model, reviewed_job.compare_with):
        model_page = manager_client.get(reverse("training:model-detail", kwargs={"model_id": model.pk}))
        assert model_page.status_code == 200
        assert f'data-field="win-rate">{percent}</strong>' in model_page.content.decode()
        fragment = manager_client.get(reverse("training:model-ab", kwargs={"model_id": model.pk})).content.decode()
        assert f'data-field="win-rate">{percent}</strong>' in fragment

    api_client.force_authenticate(manager)
    body = api_client.get(f"/api/training/generation-jobs/{reviewed_job.pk}/ab-result/").json()
    assert (body["wins"], body["n"], body["verdict"]) == (result.wins, result.n, "better")
    assert body["low"] == pytest.approx(result.low) and body["campaigns"][0]["status"] == "active"
    listed = api_client.get(f"/api/training/models/{reviewed_job.compare_with.pk}/ab-results/").json()
    assert [(r["new_model"]["id"], r["old_model"]["id"]) for r in listed] == [
        (reviewed_job.model.pk, reviewed_job.compare_with.pk)
    ]


def test_the_result_follows_each_answers_model_even_when_names_collide(tiny_model, manager, reviewer):
    twin = ModelArtifact.objects.create(name=tiny_model.name, path=tiny_model.path)
    project = project_create(name="Twins", created_by=manager)
    job = finished_job(model=tiny_model, compare_with=twin, manager=manager, project=project, prompts=["a", "b", "c"])
    generation_campaign_start(job=job, reviewers=[reviewer.get_username()])
    new_answers = set(
        Response.objects.filter(task__campaign=job.campaign, meta__model_id=tiny_model.pk).values_list("pk", flat=True)
    )
    made = simulate_pairwise_reviews(
        Campaign.objects.get(pk=job.campaign_id), [reviewer], first_wins=lambda *_: 1.0, seed=1
    )
    assert made == 3
    # Reviewers always picked the answer shown first; count the new model's wins from the judgements.
    winners = Judgement.objects.filter(task__campaign=job.campaign).values_list(
        "answers__preference__winner", flat=True
    )
    wins = sum(winner in new_answers for winner in winners)
    result = selectors.ab_result_for_job(job=job)
    assert (result.wins, result.losses) == (wins, 3 - wins)


def test_a_job_without_judgements_shows_none_yet(tiny_model, previous, manager, source_campaign, manager_client):
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, source_campaign=source_campaign)
    result = selectors.ab_result_for_job(job=job)
    assert result.win_rate is None and result.verdict == "no judgements yet" and result.n_judgements == 0
    page = manager_client.get(reverse("training:generation-job", kwargs={"job_id": job.pk})).content.decode()
    assert "no judgements yet." in page


# --- the model page ------------------------------------------------------------------------------------


def test_the_model_page_shows_lineage_and_is_linked_from_the_models_list(tiny_model, manager, manager_client):
    child = ModelArtifact.objects.create(name="tiny-sft", path=tiny_model.path, base_model=tiny_model)
    grandchild = ModelArtifact.objects.create(name="tiny-dpo", path=tiny_model.path, base_model=child)
    models = manager_client.get(reverse("training:models")).content.decode()
    url = reverse("training:model-detail", kwargs={"model_id": grandchild.pk})
    assert f'href="{url}"' in models
    page = manager_client.get(url).content.decode()
    lineage = page[page.index('class="lineage"') : page.index("</p>", page.index('class="lineage"'))]
    assert lineage.index("tiny-llama") < lineage.index("tiny-sft") < lineage.index("<strong>tiny-dpo</strong>")
    assert "No A/B reviews yet" in page
    assert f'href="{reverse("training:model-evaluate", kwargs={"model_id": grandchild.pk})}"' in page
    parent = manager_client.get(reverse("training:model-detail", kwargs={"model_id": child.pk})).content.decode()
    assert "Trained from it:" in parent and "tiny-dpo" in parent


# --- who may ---------------------------------------------------------------------------------------------

PAGES = [
    ("get", "training:generation-job", "job_id"),
    ("get", "training:generation-job-live", "job_id"),
    ("post", "training:generation-job-start", "job_id"),
    ("get", "training:model-detail", "model_id"),
    ("get", "training:model-ab", "model_id"),
]
API = [
    ("post", "/api/training/generation-jobs/{job}/start-review/"),
    ("get", "/api/training/generation-jobs/{job}/ab-result/"),
    ("get", "/api/training/models/{model}/ab-results/"),
]


@pytest.mark.parametrize(("method", "name", "argument"), PAGES)
def test_reviewers_get_403_from_the_pages(
    tiny_model, previous, manager, source_campaign, reviewer_client, method, name, argument
):
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, source_campaign=source_campaign)
    url = reverse(name, kwargs={argument: job.pk if argument == "job_id" else tiny_model.pk})
    assert getattr(reviewer_client, method)(url).status_code == 403
    assert Campaign.objects.get(pk=job.campaign_id).status == CampaignStatus.DRAFT


@pytest.mark.parametrize(("method", "url"), API)
def test_reviewers_get_403_from_the_api(
    tiny_model, previous, manager, source_campaign, api_client, reviewer, method, url
):
    job = finished_job(model=tiny_model, compare_with=previous, manager=manager, source_campaign=source_campaign)
    url = url.format(job=job.pk, model=tiny_model.pk)
    assert getattr(api_client, method)(url, {}, format="json").status_code == 401
    api_client.force_authenticate(reviewer)
    assert getattr(api_client, method)(url, {}, format="json").status_code == 403
    assert Campaign.objects.get(pk=job.campaign_id).status == CampaignStatus.DRAFT


def test_a_job_that_compared_nothing_has_no_ab_result_in_the_api(tiny_model, manager, api_client):
    project = project_create(name="Solo", created_by=manager)
    job = finished_job(model=tiny_model, manager=manager, project=project, prompts=["a"], k=2)
    api_client.force_authenticate(manager)
    response = api_client.get(f"/api/training/generation-jobs/{job.pk}/ab-result/")
    assert response.status_code == 404 and "compare_with" in response.json()["detail"]
