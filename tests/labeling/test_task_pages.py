"""The task browser's pages: the list, a task, the re-queue button; who may use them."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from labeling.models import Response, Task
from tests.labeling.factories import import_rows
from tests.labeling.task_world import build_task_world


@pytest.fixture
def world(manager, make_user):
    return build_task_world(manager, make_user)


def list_url(world) -> str:
    return reverse("labeling:campaign-tasks", args=[world.campaign.slug])


def task_url(world, name: str, view: str = "labeling:campaign-task") -> str:
    return reverse(view, args=[world.campaign.slug, world.tasks[name].pk])


def test_it_lists_filters_and_links_each_task(world, manager_client):
    page = manager_client.get(list_url(world), {"agreement_max": "0.9", "sort": "-agreement"})
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="task-list"' in body and "1\u20131 of 1 task" in body
    assert task_url(world, "split") in body
    assert task_url(world, "agree") not in body
    # The campaign's tabs lead here.
    overview = manager_client.get(reverse("labeling:campaign-detail", args=[world.campaign.slug]))
    assert list_url(world) in overview.content.decode()


def test_it_pages_and_keeps_the_filters_in_its_links(world, manager_client):
    page = manager_client.get(list_url(world), {"page_size": 2, "page": 2, "gold": "no"})
    body = page.content.decode()
    assert "3\u20134 of 5 tasks" in body and "Page 2 of 3" in body
    assert "gold=no" in page.context["next_query"] and "page=3" in page.context["next_query"]
    # A column's header sorts by it, keeping the filters, and flips the direction when it is the sort.
    assert page.context["sorts"]["agreement"] == "page_size=2&page=1&gold=no&sort=agreement"
    flipped = manager_client.get(list_url(world), {"sort": "agreement", "gold": "no"})
    assert "sort=-agreement" in flipped.context["sorts"]["agreement"]
    assert 'id="sort-agreement"' in flipped.content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"agreement_min": "7"}, "Ensure this value is less than or equal to 1."),
        ({"judgements_min": "4", "judgements_max": "1"}, "Must not be below the lower bound."),
        ({"meta": "no equals sign"}, "Write key=value"),
        ({"reviewer": "nobody"}, "No one has this username."),
        ({"page": "9"}, "Must be from 1 to 1."),
    ],
)
def test_bad_input_answers_400_with_the_error(world, manager_client, query, message):
    page = manager_client.get(list_url(world), query)
    assert page.status_code == 400
    assert message in page.content.decode()
    assert 'id="task-list"' not in page.content.decode()


def test_a_task_page_shows_every_judgement_and_escapes_model_text(world, manager, manager_client):
    import_rows(
        world.campaign,
        [{"id": "xss", "prompt": "<img src=x onerror=alert(1)>", "responses": ["<script>alert(2)</script>", "**ok**"]}],
    )
    task = Task.objects.get(campaign=world.campaign, external_id="xss")
    Response.objects.filter(task=task, position=0).update(model_name="<b>bold-model</b>")
    body = manager_client.get(reverse("labeling:campaign-task", args=[world.campaign.slug, task.pk])).content.decode()
    assert "<script>alert(2)" not in body and "<img" not in body
    assert "&lt;b&gt;bold-model&lt;/b&gt;" in body
    assert "<strong>ok</strong>" in body  # Markdown, rendered as reviewers see it

    body = manager_client.get(task_url(world, "flagged")).content.decode()
    for reviewer in world.reviewers:
        assert reviewer.username in body
    assert "Response 1, much better" in body and "Response 2: Unsafe or harmful" in body and "Reason 2" in body
    skipped = manager_client.get(task_url(world, "skipped")).content.decode()
    assert "Not my &lt;b&gt;field&lt;/b&gt;." in skipped


def test_a_task_of_another_campaign_is_not_found(world, manager_client, manager):
    other = world.tasks["agree"].pk
    url = reverse("labeling:campaign-task", args=["no-such-campaign", other])
    assert manager_client.get(url).status_code == 404
    assert manager_client.get(reverse("labeling:campaign-task", args=[world.campaign.slug, 10**9])).status_code == 404


def test_the_requeue_button_asks_for_more_votes(world, manager_client):
    response = manager_client.post(task_url(world, "split", "labeling:campaign-task-requeue"), {"votes": "2"})
    assert response.status_code == 302
    task = Task.objects.get(pk=world.tasks["split"].pk)
    assert task.extra_votes == 2
    page = manager_client.get(response["Location"])
    assert "Re-queued: the task now takes up to 5 votes (2 more)." in page.content.decode()
    assert "3</span> of 5 wanted" in page.content.decode()


@pytest.mark.parametrize("votes", ["", "zero", "0", "99"])
def test_a_bad_requeue_is_a_message_and_changes_nothing(world, manager_client, votes):
    response = manager_client.post(task_url(world, "split", "labeling:campaign-task-requeue"), {"votes": votes})
    page = manager_client.get(response["Location"])
    assert "Ask for 1 to 20 more votes." in page.content.decode()
    assert Task.objects.get(pk=world.tasks["split"].pk).extra_votes == 0


def test_the_requeue_needs_csrf_and_a_manager(world, manager, make_user):
    url = task_url(world, "split", "labeling:campaign-task-requeue")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(manager)
    assert strict.post(url, {"votes": "1"}).status_code == 403
    reviewer = Client()
    reviewer.force_login(world.reviewers[0])
    assert reviewer.post(url, {"votes": "1"}).status_code == 403
    assert reviewer.get(list_url(world)).status_code == 403
    assert reviewer.get(task_url(world, "split")).status_code == 403
    assert Task.objects.get(pk=world.tasks["split"].pk).extra_votes == 0
