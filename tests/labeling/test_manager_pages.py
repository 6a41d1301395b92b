"""The manager pages: projects, campaign settings, status, imports, pools, and the admin."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from labeling.charts import hour_chart
from labeling.forms import SCHEMA_PRESETS
from labeling.models import Assignment, Campaign, CampaignStatus, DataJob, Judgement, Project, Response, Task
from labeling.schema import parse_question_schema
from labeling.services.judgements import judgement_submit
from rlhf_platform.roles import Role
from tests.labeling.factories import claim_next, jsonl, make_campaign, pairwise_rows, run_data_jobs

MINIMAL_SCHEMA = {"questions": [{"id": "preference", "type": "pairwise"}]}
GET_PAGES = [
    ("labeling:manager-dashboard", False),
    ("labeling:project-create", False),
    ("labeling:campaign-create", False),
    ("labeling:campaign-detail", True),
    ("labeling:campaign-edit", True),
    ("labeling:campaign-import", True),
    ("labeling:campaign-reviewers", True),
]


def draft_campaign(manager, **fields) -> Campaign:
    return make_campaign(manager=manager, status=CampaignStatus.DRAFT, schema=MINIMAL_SCHEMA, **fields)


def page_url(name: str, campaign: Campaign | None = None) -> str:
    return reverse(name, kwargs={"slug": campaign.slug}) if campaign is not None else reverse(name)


def campaign_form_data(project: Project, **overrides) -> dict[str, object]:
    data = {
        "project": project.pk,
        "name": "Harmlessness round 2",
        "slug": "",
        "guidelines": "Prefer the **honest** answer.",
        "overlap": 2,
        "lease_seconds": 600,
        "gold_rate": 0.1,
        "question_schema": json.dumps(MINIMAL_SCHEMA),
    }
    return data | overrides


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def judge(campaign: Campaign, reviewer, submission: str) -> Judgement:
    assignment = claim_next(reviewer=reviewer, campaign=campaign)
    answers = {"preference": {"winner": assignment.shown_order[0], "strength": 1}}
    return judgement_submit(
        reviewer=reviewer,
        assignment_id=assignment.pk,
        answers=answers,
        client_submission_id=submission,
        time_spent_ms=4000,
    ).judgement


# --- access --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "needs_campaign"), GET_PAGES)
def test_it_serves_every_page_to_managers_only(name, needs_campaign, manager, manager_client, reviewer_client):
    campaign = draft_campaign(manager) if needs_campaign else None
    url = page_url(name, campaign)

    assert manager_client.get(url).status_code == 200
    assert reviewer_client.get(url).status_code == 403
    anonymous = Client().get(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(f"{reverse('login')}?next=")


def test_it_guards_the_status_endpoint(manager, reviewer_client):
    campaign = draft_campaign(manager, tasks=pairwise_rows(1))
    url = page_url("labeling:campaign-status", campaign)

    assert reviewer_client.post(url, {"status": "active"}).status_code == 403
    assert Client().post(url, {"status": "active"}).status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_it_refuses_a_status_change_without_a_csrf_token(manager):
    campaign = draft_campaign(manager, tasks=pairwise_rows(1))
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)

    response = client.post(page_url("labeling:campaign-status", campaign), {"status": "active"})

    assert response.status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


# --- projects and campaigns ---------------------------------------------------------------


def test_it_creates_a_project_from_the_form(manager, manager_client):
    response = manager_client.post(
        reverse("labeling:project-create"), {"name": "Assistant tone", "slug": "", "description": "Tone study"}
    )

    project = Project.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('labeling:campaign-create')}?project={project.pk}"
    assert (project.name, project.slug, project.description) == ("Assistant tone", "assistant-tone", "Tone study")
    assert project.created_by == manager


def test_it_shows_the_field_error_for_a_project_without_a_name(manager_client):
    response = manager_client.post(reverse("labeling:project-create"), {"name": "  ", "slug": "x"})

    assert response.status_code == 400
    assert response.context["form"].errors["name"]
    assert not Project.objects.exists()


def test_it_creates_a_campaign_from_the_form(manager, manager_client):
    project = draft_campaign(manager).project

    response = manager_client.post(reverse("labeling:campaign-create"), campaign_form_data(project))

    campaign = Campaign.objects.get(name="Harmlessness round 2")
    assert response.status_code == 302
    assert response["Location"] == page_url("labeling:campaign-import", campaign)
    assert campaign.project == project
    assert campaign.slug == "harmlessness-round-2"
    assert (campaign.overlap, campaign.lease_seconds, campaign.gold_rate) == (2, 600, 0.1)
    assert campaign.question_schema == parse_question_schema(MINIMAL_SCHEMA).to_json()
    assert campaign.status == CampaignStatus.DRAFT
    assert campaign.created_by == manager


def test_it_preselects_the_project_named_in_the_address(manager, manager_client):
    project = draft_campaign(manager).project

    response = manager_client.get(f"{reverse('labeling:campaign-create')}?project={project.pk}")

    assert re.search(rf'<option value="{project.pk}" selected>', response.content.decode())


def test_it_shows_each_schema_error_with_its_path_and_writes_nothing(manager, manager_client):
    project = draft_campaign(manager).project
    typed = '{"questions": [{"id": "preference", "type": "thumbs"}, {"id": "Bad Id", "type": "text"}]}'

    response = manager_client.post(
        reverse("labeling:campaign-create"), campaign_form_data(project, question_schema=typed)
    )

    assert response.status_code == 400
    errors = response.context["form"].errors["question_schema"]
    assert "questions[0].type: must be one of pairwise, ranking, likert, text, rewrite, flags" in errors
    assert any(error.startswith("questions[1].id: ") for error in errors)
    html = response.content.decode()
    assert "questions[0].type: must be one of" in html
    # The textarea keeps what the manager typed.
    assert "&quot;thumbs&quot;" in html
    assert not Campaign.objects.filter(name="Harmlessness round 2").exists()


def test_it_reports_invalid_json_with_line_and_column(manager, manager_client):
    project = draft_campaign(manager).project
    typed = '{\n  "questions": [\n    {"id": "preference" "type": "pairwise"}\n  ]\n}'

    response = manager_client.post(
        reverse("labeling:campaign-create"), campaign_form_data(project, question_schema=typed)
    )

    assert response.status_code == 400
    assert response.context["form"].errors["question_schema"] == [
        "Invalid JSON at line 3, column 25: Expecting ',' delimiter."
    ]
    assert "Invalid JSON at line 3, column 25" in response.content.decode()
    assert not Campaign.objects.filter(name="Harmlessness round 2").exists()


def test_it_shows_a_range_error_beside_its_field(manager, manager_client):
    project = draft_campaign(manager).project

    response = manager_client.post(reverse("labeling:campaign-create"), campaign_form_data(project, gold_rate=0.9))

    assert response.status_code == 400
    assert response.context["form"].errors["gold_rate"] == ["Must be a share from 0 to 0.5."]
    assert not Campaign.objects.filter(name="Harmlessness round 2").exists()


def test_it_edits_a_campaign_and_keeps_its_project(manager, manager_client):
    campaign = draft_campaign(manager)
    other = make_campaign(manager=manager, name="Other", schema=MINIMAL_SCHEMA).project
    data = campaign_form_data(other, name="Renamed", slug=campaign.slug, overlap=5)

    response = manager_client.post(page_url("labeling:campaign-edit", campaign), data)

    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.name, campaign.overlap, campaign.guidelines) == ("Renamed", 5, "Prefer the **honest** answer.")
    assert campaign.project != other  # the project select is disabled on edit


def test_it_refuses_new_questions_once_there_are_judgements(manager, manager_client, reviewer):
    campaign = make_campaign(manager=manager, reviewers=[reviewer], schema=MINIMAL_SCHEMA, tasks=pairwise_rows(2))
    judge(campaign, reviewer, "submission-1")
    ranking = json.dumps({"questions": [{"id": "rank", "type": "ranking"}]})

    response = manager_client.post(
        page_url("labeling:campaign-edit", campaign),
        campaign_form_data(campaign.project, slug=campaign.slug, question_schema=ranking),
    )

    assert response.status_code == 400
    assert response.context["form"].errors["question_schema"] == ["Fixed once there are judgements."]
    campaign.refresh_from_db()
    assert campaign.question_schema["questions"][0]["type"] == "pairwise"
    page = manager_client.get(page_url("labeling:campaign-edit", campaign)).content.decode()
    assert re.search(r'<textarea name="question_schema"[^>]* readonly', page)
    assert "data-preset=" not in page


def test_it_previews_guidelines_without_saving(manager, manager_client):
    project = draft_campaign(manager).project
    data = campaign_form_data(project, guidelines="# Rules\n\n<script>alert(1)</script>", preview="1")

    response = manager_client.post(reverse("labeling:campaign-create"), data)

    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Rules</h1>" in html
    assert "<script>alert(1)</script>" not in html
    assert not Campaign.objects.filter(name="Harmlessness round 2").exists()


def test_it_offers_only_valid_schema_presets(manager_client, manager):
    draft_campaign(manager)
    for schema in SCHEMA_PRESETS.values():
        parse_question_schema(schema)

    html = manager_client.get(reverse("labeling:campaign-create")).content.decode()

    assert 'id="schema-presets"' in html
    assert html.count("data-preset=") == len(SCHEMA_PRESETS)
    assert 'src="/static/labeling/manager.js"' in html


# --- campaign page and status -------------------------------------------------------------


def test_it_refuses_to_start_a_campaign_without_tasks(manager, manager_client):
    campaign = draft_campaign(manager)

    response = manager_client.post(page_url("labeling:campaign-status", campaign), {"status": "active"}, follow=True)

    assert response.redirect_chain == [(page_url("labeling:campaign-detail", campaign), 302)]
    assert messages_of(response) == ["Import tasks with responses before starting the campaign."]
    assert "Import tasks with responses before starting the campaign." in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_it_starts_a_campaign_with_tasks_then_offers_pause_and_close(manager, manager_client):
    campaign = draft_campaign(manager, tasks=pairwise_rows(2))

    response = manager_client.post(page_url("labeling:campaign-status", campaign), {"status": "active"}, follow=True)

    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE
    assert messages_of(response) == ["The campaign is active."]
    assert [action["status"] for action in response.context["actions"]] == ["paused", "closed"]


def test_it_reports_a_transition_that_is_not_allowed(manager, manager_client):
    campaign = draft_campaign(manager, tasks=pairwise_rows(1))

    response = manager_client.post(page_url("labeling:campaign-status", campaign), {"status": "paused"}, follow=True)

    assert messages_of(response) == ["A draft campaign cannot become paused."]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_it_offers_no_transition_for_a_closed_campaign(manager, manager_client):
    campaign = make_campaign(manager=manager, schema=MINIMAL_SCHEMA, status=CampaignStatus.CLOSED)

    response = manager_client.get(page_url("labeling:campaign-detail", campaign))

    assert response.context["actions"] == []
    assert page_url("labeling:campaign-status", campaign) not in response.content.decode()


def test_it_shows_counts_progress_and_one_chart_bar_per_hour(manager, manager_client, reviewer):
    rows = [*pairwise_rows(3), {"id": "p1", "prompt": "Only a prompt"}]
    campaign = make_campaign(manager=manager, reviewers=[reviewer], schema=MINIMAL_SCHEMA, tasks=rows, overlap=2)
    judge(campaign, reviewer, "submission-1")
    judge(campaign, reviewer, "submission-2")

    response = manager_client.get(page_url("labeling:campaign-detail", campaign))

    html = response.content.decode()
    stats = response.context["stats"]
    assert (stats["tasks"]["regular"], stats["tasks"]["prompt_only"], stats["judgements"]) == (3, 1, 2)
    assert response.context["done"] == 2
    assert response.context["percent"] == 33  # 2 of 3 tasks x overlap 2
    assert 'aria-valuenow="2"' in html and 'aria-valuemax="6"' in html
    svg = re.search(r"<svg[^>]*role=\"img\".*?</svg>", html, re.S).group(0)  # the chart, not a progress bar
    bars = re.findall(r'<rect class="chart-bar"[^>]*height="([\d.]+)"', svg)
    assert len(bars) == 24
    # Both judgements fall in the current hour: the last bar is the full height, the others empty.
    assert float(bars[-1]) > 0 and all(float(height) == 0 for height in bars[:-1])
    assert "2 judgements</title>" in svg
    assert "<script" not in svg
    # The per-reviewer table.
    assert response.context["stats"]["reviewers"] == [
        {"reviewer": reviewer.username, "in_pool": True, "judgements": 2, "skips": 0, "median_seconds": 4.0}
    ]
    assert f"<td>{reviewer.username}</td>" in html


def test_it_scales_chart_bars_to_the_busiest_hour():
    per_hour = [{"hour": f"2025-01-01T{h:02d}:00:00+00:00", "judgements": n} for h, n in enumerate([0, 2, 4])]

    chart = hour_chart(per_hour)

    heights = [bar["height"] for bar in chart["bars"]]
    assert heights[0] == 0
    assert heights[2] == chart["baseline"] - chart["top"]
    assert heights[1] == pytest.approx(heights[2] / 2)
    assert [bar["label_x"] is not None for bar in chart["bars"]] == [True, False, False]
    assert (chart["peak"], chart["total"]) == (4, 6)


def test_it_renders_guidelines_as_sanitized_markdown(manager, manager_client):
    campaign = draft_campaign(manager, guidelines="**Be kind** <img src=x onerror=alert(1)><script>alert(2)</script>")

    html = manager_client.get(page_url("labeling:campaign-detail", campaign)).content.decode()

    assert "<strong>Be kind</strong>" in html
    assert "<script>alert(2)" not in html
    assert "<img" not in html


def test_it_lists_projects_and_campaigns_with_progress_on_the_dashboard(manager, manager_client, reviewer):
    campaign = make_campaign(manager=manager, reviewers=[reviewer], schema=MINIMAL_SCHEMA, tasks=pairwise_rows(2))
    judge(campaign, reviewer, "submission-1")
    empty_project = Project.objects.create(name="Empty project", slug="empty", created_by=manager)

    response = manager_client.get(reverse("labeling:manager-dashboard"))

    html = response.content.decode()
    assert campaign.project.name in html and empty_project.name in html
    assert f'href="{page_url("labeling:campaign-detail", campaign)}"' in html
    assert '<span class="badge badge-active">Active</span>' in html
    assert "1 / 6" in html  # 2 tasks x overlap 3
    assert reverse("labeling:project-create") in html
    assert f"{reverse('labeling:campaign-create')}?project={empty_project.pk}" in html
    assert "No campaigns yet." in html


# --- imports -------------------------------------------------------------------------------

GOOD_ROWS = [
    {"id": "t1", "prompt": "Hi", "responses": ["A", "B"]},
    {"id": "t2", "prompt": "Hello", "responses": ["C", "D"]},
    {"id": "t0", "prompt": "Imported before", "responses": ["E", "F"]},
    {"id": "p1", "prompt": "Write a poem"},
]


def campaign_with_a_task_imported_before(manager):
    """A draft campaign already holding task "t0" of GOOD_ROWS, which an import skips and counts."""
    campaign = draft_campaign(manager)
    Task.objects.create(campaign=campaign, external_id="t0", prompt="Imported before")
    return campaign


BAD_ROWS = [
    {"id": "t1", "prompt": "Hi", "responses": ["A", "B"]},
    {"id": "t2", "prompt": "", "responses": ["C", "D"]},
    {"id": "t3", "prompt": "Three", "responses": ["E", "F", "G"]},
]


def test_it_queues_an_import_and_answers_the_job_to_the_script(manager, manager_client):
    campaign = campaign_with_a_task_imported_before(manager)

    response = manager_client.post(
        page_url("labeling:campaign-import", campaign),
        {"file": upload("tasks.jsonl", jsonl(GOOD_ROWS))},
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 202
    job = DataJob.objects.get()
    assert response.json() == {
        "id": job.pk,
        "status": "queued",
        "url": f"/api/data-jobs/{job.pk}/",
        "page": f"/manage/jobs/{job.pk}/",
    }
    assert response["Location"] == f"/api/data-jobs/{job.pk}/"
    assert Task.objects.filter(campaign=campaign).count() == 1  # nothing imported in the request

    run_data_jobs()
    followed = manager_client.get(response["Location"], HTTP_ACCEPT="application/json").json()
    assert followed["status"] == "succeeded"
    assert followed["result"] == {"created": 3, "skipped_duplicates": 1, "prompt_only": 1, "rows": 4}
    assert Task.objects.filter(campaign=campaign).count() == 4


def test_it_reports_a_bad_file_with_line_numbers_in_the_job(manager, manager_client):
    campaign = draft_campaign(manager)

    response = manager_client.post(
        page_url("labeling:campaign-import", campaign),
        {"file": upload("tasks.jsonl", jsonl(BAD_ROWS))},
        HTTP_ACCEPT="application/json",
    )
    run_data_jobs()

    body = manager_client.get(response["Location"]).json()
    assert body["status"] == "failed"
    assert body["detail"].startswith("Line 2: prompt must be non-empty text.")
    assert "Nothing was imported" in body["detail"]
    assert list(body["errors"]) == ["line 2", "line 3"]
    assert "pairwise questions compare exactly 2 responses" in body["errors"]["line 3"]
    assert not Task.objects.filter(campaign=campaign).exists()


def test_it_imports_a_file_through_the_plain_form(manager, manager_client):
    campaign = campaign_with_a_task_imported_before(manager)

    response = manager_client.post(
        page_url("labeling:campaign-import", campaign), {"file": upload("tasks.jsonl", jsonl(GOOD_ROWS))}
    )

    job = DataJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/manage/jobs/{job.pk}/"
    waiting = manager_client.get(response["Location"]).content.decode()
    assert "Waiting for the worker" in waiting and f'data-poll-url="/manage/jobs/{job.pk}/live/"' in waiting
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in waiting  # follows it without a script
    run_data_jobs()
    html = manager_client.get(response["Location"]).content.decode()
    assert "http-equiv" not in html
    assert '<span class="count-value" data-count="created">3</span> created' in html
    assert '<span class="count-value" data-count="skipped_duplicates">1</span> skipped duplicates' in html
    assert '<span class="count-value" data-count="prompt_only">1</span> prompt-only' in html
    assert Task.objects.filter(campaign=campaign).count() == 4
    listed = manager_client.get(page_url("labeling:campaign-import", campaign)).content.decode()
    assert "Recent imports" in listed and f'href="/manage/jobs/{job.pk}/"' in listed


def test_it_lists_bad_rows_on_the_job_page_and_imports_nothing(manager, manager_client):
    campaign = draft_campaign(manager)

    response = manager_client.post(
        page_url("labeling:campaign-import", campaign),
        {"file": upload("tasks.jsonl", jsonl(BAD_ROWS))},
        HTTP_ACCEPT="text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    )
    run_data_jobs()

    html = manager_client.get(response["Location"]).content.decode()
    assert "Line 2: prompt must be non-empty text. Nothing was imported" in html
    assert '<tr><td class="num">2</td><td>prompt must be non-empty text</td></tr>' in html
    assert '<td class="num">3</td>' in html
    assert not Task.objects.filter(campaign=campaign).exists()
    live = manager_client.get(response["Location"] + "live/").content.decode()
    assert '<td class="num">3</td>' in live and "<html" not in live


@pytest.mark.parametrize(
    ("file_name", "message"),
    [(None, "Choose a file to import."), ("tasks.txt", "Cannot tell the format of 'tasks.txt'")],
)
def test_it_explains_a_missing_or_unknown_file(file_name, message, manager, manager_client):
    campaign = draft_campaign(manager)
    files = {"file": upload(file_name, jsonl(GOOD_ROWS))} if file_name else {}

    response = manager_client.post(page_url("labeling:campaign-import", campaign), files)

    assert response.status_code == 400
    assert escape(message) in response.content.decode()
    assert not Task.objects.filter(campaign=campaign).exists()
    assert not DataJob.objects.exists()


def test_it_documents_the_import_format(manager, manager_client):
    campaign = draft_campaign(manager)

    html = manager_client.get(page_url("labeling:campaign-import", campaign)).content.decode()

    assert 'enctype="multipart/form-data"' in html
    assert "csrfmiddlewaretoken" in html
    assert '"responses": ["text", "..."]' in html
    assert "<progress" in html


# --- reviewer pool -------------------------------------------------------------------------


def test_it_saves_the_reviewer_pool(manager, manager_client, make_user):
    ada = make_user("ada", role=Role.REVIEWER)
    bob = make_user("bob", role=Role.REVIEWER)
    make_user("carl", role=Role.REVIEWER, is_active=False)
    campaign = draft_campaign(manager, reviewers=[bob])

    page = manager_client.get(page_url("labeling:campaign-reviewers", campaign))
    assert [c["username"] for c in page.context["choices"]] == ["ada", "bob"]
    assert re.search(r'value="bob" checked', page.content.decode())
    assert not re.search(r'value="ada" checked', page.content.decode())

    response = manager_client.post(page_url("labeling:campaign-reviewers", campaign), {"reviewers": ["ada"]})

    assert response.status_code == 302
    assert set(campaign.reviewers.all()) == {ada}
    assert messages_of(manager_client.get(response["Location"])) == ["Pool saved: 1 reviewer."]
    assert bob.pk  # still a user, only out of the pool


def test_it_refuses_a_pool_with_someone_who_is_not_a_reviewer(manager, manager_client, make_user):
    ada = make_user("ada", role=Role.REVIEWER)
    make_user("mallory")
    campaign = draft_campaign(manager, reviewers=[ada])

    response = manager_client.post(
        page_url("labeling:campaign-reviewers", campaign), {"reviewers": ["ada", "mallory"]}, follow=True
    )

    assert messages_of(response) == ["Not active reviewers: mallory."]
    assert set(campaign.reviewers.all()) == {ada}


# --- admin ---------------------------------------------------------------------------------


@pytest.fixture
def admin_client(db, manager, reviewer) -> Client:
    superuser = get_user_model().objects.create_superuser("root", "root@example.com", "a long passphrase")
    client = Client()
    client.force_login(superuser)
    return client


def test_it_loads_every_admin_changelist(admin_client, manager, reviewer):
    campaign = make_campaign(manager=manager, reviewers=[reviewer], schema=MINIMAL_SCHEMA, tasks=pairwise_rows(2))
    judgement = judge(campaign, reviewer, "submission-1")

    for model in ("project", "campaign", "task", "assignment", "judgement"):
        response = admin_client.get(reverse(f"admin:labeling_{model}_changelist"))
        assert response.status_code == 200, model
    task_page = admin_client.get(reverse("admin:labeling_task_change", args=[judgement.task_id]))
    assert task_page.status_code == 200
    for text in Response.objects.filter(task_id=judgement.task_id).values_list("text", flat=True):
        assert text in task_page.content.decode()


def test_it_keeps_judgements_read_only_in_the_admin(admin_client, manager, reviewer):
    campaign = make_campaign(manager=manager, reviewers=[reviewer], schema=MINIMAL_SCHEMA, tasks=pairwise_rows(1))
    judgement = judge(campaign, reviewer, "submission-1")
    change_url = reverse("admin:labeling_judgement_change", args=[judgement.pk])

    assert admin_client.get(reverse("admin:labeling_judgement_add")).status_code == 403
    assert admin_client.post(change_url, {"time_spent_ms": 1, "answers": "{}"}).status_code == 403
    assert admin_client.post(reverse("admin:labeling_judgement_delete", args=[judgement.pk])).status_code == 403
    view = admin_client.get(change_url)
    assert view.status_code == 200  # readable, with no save button
    assert 'name="_save"' not in view.content.decode()
    judgement.refresh_from_db()
    assert judgement.time_spent_ms == 4000
    # Deleting the task would take the judgement with it, so that is refused too.
    task_delete = admin_client.post(reverse("admin:labeling_task_delete", args=[judgement.task_id]), {"post": "yes"})
    assert task_delete.status_code == 403
    assert Judgement.objects.filter(pk=judgement.pk).exists()
    assert Assignment.objects.filter(pk=judgement.assignment_id).exists()
