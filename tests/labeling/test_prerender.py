"""Responses rendered once in the background, and used when a task is handed out."""

import threading
import uuid

import pytest

from labeling.models import Response
from labeling.rendering import RENDERER_VERSION, render_markdown
from labeling.selectors import assignment_payload, claim_payload
from labeling.services.assignment import assignment_claim_next
from labeling.services.judgements import judgement_submit_and_claim_next
from labeling.services.prerender import responses_render_pending
from rlhf_platform.roles import Role
from tests.labeling.factories import make_campaign, pairwise_rows
from training.worker import Worker

STORED = "<p>stored html</p>"


@pytest.fixture
def reviewer(make_user):
    return make_user("prerender", role=Role.REVIEWER)


@pytest.fixture
def campaign(manager, reviewer):
    return make_campaign(manager=manager, reviewers=[reviewer], tasks=pairwise_rows(6), overlap=1)


def test_an_import_leaves_the_responses_to_render_and_the_pass_renders_them_once(campaign):
    assert set(Response.objects.values_list("html", "rendered_with")) == {("", 0)}
    assert responses_render_pending(batch_size=5) == 12
    for text, html, renderer in Response.objects.values_list("text", "html", "rendered_with"):
        assert html == render_markdown(text) and renderer == RENDERER_VERSION
    assert responses_render_pending() == 0


def test_a_pass_can_be_bounded(campaign):
    assert responses_render_pending(batch_size=5, max_batches=1) == 5
    assert Response.objects.filter(rendered_with=RENDERER_VERSION).count() == 5


def _mark_rendered(html: str, renderer: int) -> None:
    Response.objects.update(html=html, rendered_with=renderer)


@pytest.mark.parametrize("path", ["database default", "step by step"])
def test_a_claim_shows_the_stored_html_of_the_current_renderer(campaign, reviewer, path, request):
    if path == "step by step":
        request.getfixturevalue("step_by_step")
    _mark_rendered(STORED, RENDERER_VERSION)
    claim = assignment_claim_next(reviewer=reviewer, campaign=campaign)
    assert [r["html"] for r in claim_payload(claim)["responses"]] == [STORED, STORED]
    # Read again from the database (held tasks, undo): the same.
    assert [r["html"] for r in assignment_payload(claim.assignment)["responses"]] == [STORED, STORED]


def test_html_stored_by_another_renderer_is_rendered_anew(campaign, reviewer):
    _mark_rendered(STORED, RENDERER_VERSION - 1)
    claim = assignment_claim_next(reviewer=reviewer, campaign=campaign)
    for payload in (claim_payload(claim), assignment_payload(claim.assignment)):
        for shown in payload["responses"]:
            assert shown["html"] == render_markdown(shown["text"]) != STORED


def test_submit_and_next_shows_the_stored_html(campaign, reviewer):
    _mark_rendered(STORED, RENDERER_VERSION)
    first = assignment_claim_next(reviewer=reviewer, campaign=campaign).assignment
    _, claim = judgement_submit_and_claim_next(
        reviewer=reviewer,
        assignment_id=first.pk,
        answers={"preference": {"winner": first.shown_order[0], "strength": 1}},
        client_submission_id=str(uuid.uuid4()),
        time_spent_ms=10,
    )
    assert [r["html"] for r in claim_payload(claim)["responses"]] == [STORED, STORED]


def test_the_worker_renders_responses_between_jobs(campaign):
    messages = []
    worker = Worker(log=messages.append)
    assert worker.render_responses() == 12
    assert worker.render_responses() == 0
    assert messages == ["rendered 12 response(s)"]


def test_the_worker_renders_only_when_no_job_is_queued(monkeypatch):
    worker = Worker(log=lambda message: None)
    stop = threading.Event()
    jobs = iter([True, False, False])  # one job, then an empty queue twice
    calls = []

    def run_once():
        calls.append("job" if (job := next(jobs)) else "no job")
        return job

    def render_responses():
        calls.append("render")
        if calls.count("render") == 2:
            stop.set()
            return 0  # the second pass finds nothing left to render
        return 12

    monkeypatch.setattr(worker, "recover", lambda: 0)
    monkeypatch.setattr(worker, "run_once", run_once)
    monkeypatch.setattr(worker, "render_responses", render_responses)
    worker.run_forever(poll_s=0.01, stop=stop)
    assert calls == ["job", "no job", "render", "no job", "render"]
