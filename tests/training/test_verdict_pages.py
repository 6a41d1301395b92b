"""The round page ends with the verdict and the human A/B result; the model page carries its verdict."""

from __future__ import annotations

import pytest

from labeling.models import Campaign
from labeling.services.campaigns import project_create
from rlhf_platform.roles import Role
from tests.labeling.simulation import simulate_pairwise_reviews
from tests.training.test_ab_review import finished_job
from training.engine import statistics
from training.models import JobStatus, ModelArtifact, Round, Stage, TrainingRun
from training.services.evaluation import model_record_evaluation
from training.services.generation import generation_campaign_start

pytestmark = pytest.mark.django_db


def verdict_report() -> dict:
    """A report as the evaluate stage writes it: 40 held-out pairs, the new model right on 34, the base on 20."""
    new, base = [1.0] * 34 + [0.0] * 6, [1.0] * 20 + [0.0] * 20
    figures = [
        statistics.paired_figure(
            "preference_accuracy",
            "Agreement with held-out human preferences",
            unit="share",
            better="higher",
            new=new,
            base=base,
        ),
        statistics.paired_figure(
            "answer_tokens", "Answer length", unit="tokens", better=None, new=[12.0] * 40, base=[10.0] * 40
        ),
    ]
    summary = statistics.summarize(figures, reward_model_trusted=None)
    example = {
        "prompt": "Say <b>hi</b>",
        "new": "<script>alert(1)</script>",
        "new_tokens": 5,
        "base": "hi",
        "base_tokens": 1,
    }
    return {"kind": "policy", "figures": figures, "summary": summary, "examples": [example]}


@pytest.fixture
def evaluated_round(tiny_model, manager):
    """A finished DPO round on the tiny model, its policy registered, its evaluate stage's report stored."""
    round_ = Round.objects.create(
        name="Round 7", preset=Round.Preset.SINGLE, base_model=tiny_model, status=Round.Status.SUCCEEDED
    )
    policy = ModelArtifact.objects.create(name="tiny-dpo", path=tiny_model.path, created_by=manager)
    TrainingRun.objects.create(
        round=round_, position=0, stage=Stage.DPO, status=JobStatus.SUCCEEDED, input_model=tiny_model,
        output_model=policy,
    )  # fmt: skip
    report = verdict_report()
    evaluate = TrainingRun.objects.create(
        round=round_, position=1, stage=Stage.EVALUATE, status=JobStatus.SUCCEEDED, input_model=policy,
        final_metrics={"preference_accuracy": 0.85, "report": report},
    )  # fmt: skip
    model_record_evaluation(model=policy, run=evaluate, report=report)
    return round_, policy


def test_the_verdict_is_computed_and_called_better(evaluated_round):
    summary = verdict_report()["summary"]
    assert summary["verdict"] == "better" and summary["headline"] == "preference_accuracy"
    assert "50% → 85%" in summary["reason"]


def test_the_round_page_ends_with_the_verdict_and_asks_for_an_ab_review(client, manager, evaluated_round):
    round_, policy = evaluated_round
    client.force_login(manager)
    page = client.get(f"/training/rounds/{round_.pk}/").content.decode()
    assert 'data-verdict="better"' in page and "Agreement with held-out human preferences" in page
    assert "85.0%" in page and "+35.0 pts" in page
    # Model text is shown as text, never as markup.
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f"?model={policy.pk}&amp;compare_with={round_.base_model.pk}" in page  # no A/B review yet
    fragment = client.get(f"/training/rounds/{round_.pk}/live/").content.decode()
    assert 'data-verdict="better"' in fragment
    api = client.get(f"/api/training/rounds/{round_.pk}/").json()
    assert api["verdict"]["summary"]["verdict"] == "better"


def test_the_round_page_follows_the_human_ab_result(client, manager, make_user, evaluated_round):
    round_, policy = evaluated_round
    prompts = [{"id": f"p{i}", "prompt": f"Prompt {i}"} for i in range(60)]
    project = project_create(name="Assistant", created_by=manager)
    job = finished_job(model=policy, compare_with=round_.base_model, manager=manager, project=project, prompts=prompts)
    reviewer = make_user("ab-sim", role=Role.REVIEWER)
    generation_campaign_start(job=job, reviewers=[reviewer.get_username()])
    simulate_pairwise_reviews(
        Campaign.objects.get(pk=job.campaign_id),
        [reviewer],
        first_wins=lambda first, _second: 0.8 if first == policy.name else 0.2,
        seed=3,
    )
    client.force_login(manager)
    fragment = client.get(f"/training/rounds/{round_.pk}/ab/").content.decode()
    assert 'data-field="n">60<' in fragment and "tiny-dpo" in fragment
    assert "Human A/B review" in client.get(f"/training/rounds/{round_.pk}/").content.decode()


def test_the_model_page_shows_its_verdict(client, manager, evaluated_round):
    round_, policy = evaluated_round
    client.force_login(manager)
    page = client.get(f"/training/models/{policy.pk}/").content.decode()
    assert 'data-verdict="better"' in page and f"/training/rounds/{round_.pk}/" in page


def test_reviewers_cannot_see_the_round_verdict(client, make_user, evaluated_round):
    round_, _policy = evaluated_round
    client.force_login(make_user("curious", role=Role.REVIEWER))
    assert client.get(f"/training/rounds/{round_.pk}/ab/").status_code == 403
