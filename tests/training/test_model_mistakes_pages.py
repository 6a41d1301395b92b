"""The Mistakes page and API of a model: slices worst first, each opening its wrong pairs (model text
escaped), a policy's lost prompts, and a clear message for a model without per-item outcomes."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from labeling.models import Task
from tests.labeling.factories import make_campaign
from training.models import JobStatus, ModelArtifact, Round, Stage, TrainingRun

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("x")</script>'


def evaluated_model(tmp_path, manager, *, kind: str, outcomes: list[dict]) -> ModelArtifact:
    """A model whose latest evaluation kept ``outcomes`` (as the evaluate stage writes them)."""
    output = tmp_path / "eval-output"
    output.mkdir()
    (output / "outcomes.jsonl").write_text("".join(json.dumps(row) + "\n" for row in outcomes))
    run = TrainingRun.objects.create(stage=Stage.EVALUATE, status=JobStatus.SUCCEEDED, spec={"output_dir": str(output)})
    counts = {"file": "outcomes.jsonl", "pairs": 0, "prompts": 0}
    counts["pairs" if kind == "reward" else "prompts"] = len(outcomes)
    verdict = {"run": run.pk, "round": None, "kind": kind, "figures": [], "outcomes": counts,
               "summary": {"verdict": "better", "reason": "", "warnings": [], "headline": None}}  # fmt: skip
    return ModelArtifact.objects.create(
        name="rm", kind=ModelArtifact.Kind.REWARD_MODEL if kind == "reward" else ModelArtifact.Kind.CAUSAL_LM,
        path=str(tmp_path), evaluation={"verdict": verdict},
    )  # fmt: skip


def topic_tasks(manager) -> list[Task]:
    """40 tasks of one campaign, every fourth about geography."""
    rows = [{"id": f"t{i}", "prompt": f"Question {i}?", "responses": ["a", "b"],
             "meta": {"topic": "geography" if i % 4 == 0 else "chat"}} for i in range(40)]  # fmt: skip
    make_campaign(manager=manager, tasks=rows, name="Helpfulness <b>1</b>")
    return list(Task.objects.order_by("pk"))


def pair_outcomes(tasks: list[Task]) -> list[dict]:
    """Wrong on every geography task, with hostile text in the first one's answers; right elsewhere."""
    rows = []
    for index, task in enumerate(tasks):
        wrong = task.meta["topic"] == "geography"
        rows.append({"kind": "pair", "item": index, "task_id": str(task.pk), "group_id": f"g{index}",
                     "agreement": 1.0, "n_votes": 1, "prompt": f"Question {index}?",
                     "chosen": HOSTILE if index == 0 else "c", "rejected": "r", "margin": -1.0 - index if wrong else 1.0,
                     "correct": 0.0 if wrong else 1.0})  # fmt: skip
    return rows


def test_it_shows_the_worst_slice_first_and_flagged_and_opens_its_wrong_pairs(tmp_path, manager, manager_client):
    model = evaluated_model(tmp_path, manager, kind="reward", outcomes=pair_outcomes(topic_tasks(manager)))
    url = reverse("training:model-mistakes", args=[model.pk])
    page = manager_client.get(url).content.decode()
    rows = page.split('<tr data-slice="')[1:]
    assert rows[0].startswith('meta:topic:geography" class="much-worse"'), rows[0][:200]
    assert sum('class="much-worse"' in row for row in rows) == 1
    assert "Accuracy <strong>75.0%</strong>" in page
    # The campaign's name is escaped as text.
    assert "Helpfulness &lt;b&gt;1&lt;/b&gt;" in page and "Helpfulness <b>1</b>" not in page

    opened = manager_client.get(url, {"dimension": "meta", "key": "topic", "value": "geography"})
    body = opened.content.decode()
    assert opened.status_code == 200 and body.count('class="example mistake"') == 10
    # The most confidently wrong first, and the model text escaped.
    items = [int(chunk.split('"')[0]) for chunk in body.split('data-item="')[1:]]
    assert items == sorted(items, reverse=True)
    assert HOSTILE not in body and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body
    chat = manager_client.get(url, {"dimension": "meta", "key": "topic", "value": "chat"}).content.decode()
    assert "It got every pair here right." in chat


def test_wrong_pairs_come_in_pages(tmp_path, manager, manager_client):
    tasks = topic_tasks(manager)
    outcomes = [{**row, "correct": 0.0, "margin": -1.0} for row in pair_outcomes(tasks)] * 2
    model = evaluated_model(tmp_path, manager, kind="reward", outcomes=outcomes)
    url = reverse("training:model-mistakes", args=[model.pk])
    first = manager_client.get(url, {"dimension": "meta", "key": "topic", "value": "chat"}).content.decode()
    assert first.count('class="example mistake"') == 50 and "Page 1 of 2" in first
    second = manager_client.get(url, {"dimension": "meta", "key": "topic", "value": "chat", "page": 2})
    assert second.content.decode().count('class="example mistake"') == 10


def test_an_unknown_slice_is_a_clear_404(tmp_path, manager, manager_client):
    model = evaluated_model(tmp_path, manager, kind="reward", outcomes=pair_outcomes(topic_tasks(manager)))
    response = manager_client.get(
        reverse("training:model-mistakes", args=[model.pk]), {"dimension": "meta", "key": "topic", "value": "nope"}
    )
    assert response.status_code == 404 and "No held-out item is in that slice" in response.content.decode()


def test_a_policy_page_lists_the_prompts_it_lost_with_both_answers(tmp_path, manager, manager_client):
    tasks = topic_tasks(manager)[:3]
    outcomes = [
        {"kind": "prompt", "item": i, "task_id": str(task.pk), "group_id": f"g{i}", "prompt": f"Q{i}",
         "new": f"new answer {i} {HOSTILE}", "base": f"base answer {i}", "new_reward": float(i), "base_reward": 1.5,
         "winner": "new" if i > 1.5 else "base"}
        for i, task in enumerate(tasks)
    ]  # fmt: skip
    model = evaluated_model(tmp_path, manager, kind="policy", outcomes=outcomes)
    page = manager_client.get(reverse("training:model-mistakes", args=[model.pk])).content.decode()
    assert "Win rate against its base <strong>33.3%</strong>" in page
    assert "new answer 0" in page and "base answer 0" in page and "new answer 1" in page
    assert "new answer 2" not in page  # it won that one
    assert page.index("new answer 0") < page.index("new answer 1")  # the larger loss first
    assert HOSTILE not in page


def test_a_model_without_outcomes_shows_why(tmp_path, manager, manager_client, manager_api):
    never = ModelArtifact.objects.create(name="fresh", path=str(tmp_path))
    older = ModelArtifact.objects.create(
        name="older", path=str(tmp_path),
        evaluation={"verdict": {"run": None, "kind": "reward", "figures": [], "summary": {"verdict": "better"}}},
    )  # fmt: skip
    page = manager_client.get(reverse("training:model-mistakes", args=[never.pk]))
    assert page.status_code == 200 and "has not been evaluated yet" in page.content.decode()
    page = manager_client.get(reverse("training:model-mistakes", args=[older.pk]))
    assert page.status_code == 200 and "kept only its figures" in page.content.decode()
    answer = manager_api.get(reverse("api-training-model-mistakes", args=[older.pk]))
    assert answer.status_code == 200 and "kept only its figures" in answer.json()["message"]
    assert answer.json()["slices"] == []


def test_outcomes_no_longer_on_disk_show_why(tmp_path, manager, manager_client):
    model = evaluated_model(tmp_path, manager, kind="reward", outcomes=pair_outcomes(topic_tasks(manager)))
    (tmp_path / "eval-output" / "outcomes.jsonl").unlink()
    page = manager_client.get(reverse("training:model-mistakes", args=[model.pk])).content.decode()
    assert "are no longer on disk" in page


def test_the_api_returns_the_slices_worst_first(tmp_path, manager, manager_api):
    model = evaluated_model(tmp_path, manager, kind="reward", outcomes=pair_outcomes(topic_tasks(manager)))
    body = manager_api.get(reverse("api-training-model-mistakes", args=[model.pk])).json()
    assert body["kind"] == "reward" and body["count"] == 40 and body["score"] == pytest.approx(0.75)
    worst = body["slices"][0]
    assert (worst["dimension"], worst["key"], worst["value"], worst["much_worse"]) == (
        "meta",
        "topic",
        "geography",
        True,
    )
    assert worst["count"] == 10 and worst["score"] == 0.0 and worst["interval"][1] < 0.75


def test_reviewers_may_not_see_mistakes(tmp_path, manager, reviewer_client, reviewer):
    from rest_framework.test import APIClient

    model = evaluated_model(tmp_path, manager, kind="reward", outcomes=pair_outcomes(topic_tasks(manager)))
    assert reviewer_client.get(reverse("training:model-mistakes", args=[model.pk])).status_code == 403
    api = APIClient()
    api.force_authenticate(reviewer)
    assert api.get(reverse("api-training-model-mistakes", args=[model.pk])).status_code == 403


def test_the_model_page_and_its_verdict_link_to_the_mistakes(tmp_path, manager, manager_client):
    model = evaluated_model(tmp_path, manager, kind="reward", outcomes=pair_outcomes(topic_tasks(manager)))
    evaluation = Round.objects.create(name="eval", preset=Round.Preset.EVALUATION, base_model=model)
    model.evaluation["verdict"]["round"] = evaluation.pk
    model.save(update_fields=["evaluation"])
    page = manager_client.get(reverse("training:model-detail", args=[model.pk])).content.decode()
    url = reverse("training:model-mistakes", args=[model.pk])
    assert page.count(f'href="{url}"') == 2 and "Mistakes, by slice" in page


def test_a_policy_verdict_without_judged_prompts_has_no_mistakes_link(tmp_path, manager, manager_client):
    model = evaluated_model(tmp_path, manager, kind="policy", outcomes=[])
    evaluation = Round.objects.create(name="eval", preset=Round.Preset.EVALUATION, base_model=model)
    model.evaluation["verdict"]["round"] = evaluation.pk
    model.save(update_fields=["evaluation"])
    page = manager_client.get(reverse("training:model-detail", args=[model.pk])).content.decode()
    assert "Prompts it lost" not in page
    mistakes_page = manager_client.get(reverse("training:model-mistakes", args=[model.pk])).content.decode()
    assert "there are no lost prompts to show" in mistakes_page
