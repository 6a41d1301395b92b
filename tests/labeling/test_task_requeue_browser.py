"""In a real Chromium: a manager filters a campaign's tasks, opens one, re-queues it, and a new reviewer gets it."""

import os
from pathlib import Path

import pytest

from labeling.models import Task
from tests.labeling.factories import claim_next
from tests.labeling.task_world import build_task_world

pytestmark = pytest.mark.django_db(transaction=True)


def test_filter_open_and_requeue_a_task(manager, make_user, signed_in_page, live_server, tmp_path):
    shots = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    world = build_task_world(manager, make_user)
    page = signed_in_page(manager.username)
    violations: list[str] = []
    page.on("console", lambda message: "Content Security Policy" in message.text and violations.append(message.text))

    page.goto(f"{live_server.url}/manage/campaigns/{world.campaign.slug}/")
    page.click("nav.tabs >> text='Tasks'")
    page.wait_for_selector("#task-list")
    assert page.locator("#task-list tbody tr").count() == 6
    page.fill("#id_agreement_max", "0.9")
    page.select_option("#id_gold", "no")
    page.click("#task-filters button[type=submit]")
    page.wait_for_selector("text=1\u20131 of 1 task")
    assert page.locator("#task-list tbody tr").count() == 1
    page.screenshot(path=str(shots / "task-browser-filtered.png"), full_page=True)

    page.click("#task-list tbody tr a")
    page.wait_for_selector("#judgements")
    assert page.locator("#judgements tbody tr").count() == 3
    assert "Response 2, much better" in page.locator("#judgements").inner_text()
    page.fill("#requeue-votes", "1")
    page.click("#requeue button[type=submit]")
    page.wait_for_selector("text=Re-queued: the task now takes up to 4 votes (1 more).")
    page.screenshot(path=str(shots / "task-requeued.png"), full_page=True)
    # Back to the list with its filters kept.
    page.click("#back-to-tasks")
    page.wait_for_selector("text=1\u20131 of 1 task")
    assert violations == []

    split = world.tasks["split"]
    assert Task.objects.get(pk=split.pk).extra_votes == 1
    newcomer = make_user("newcomer")
    world.campaign.reviewers.add(newcomer)
    assert claim_next(reviewer=newcomer, campaign=world.campaign).task_id == split.pk
    assert claim_next(reviewer=world.reviewers[0], campaign=world.campaign) is None
