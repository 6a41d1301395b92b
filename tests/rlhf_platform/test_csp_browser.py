"""In a real Chromium: the pages people use break no rule of the Content-Security-Policy (Chromium
reports every refused script, style or connection as a console error and a
securitypolicyviolation event), and what used inline styles still shows (progress bars, code)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling.models import DataJob
from labeling.services.data_jobs import ProgressFile
from rlhf_platform.roles import Role
from tests.labeling.factories import make_campaign, pairwise_rows
from training.models import ModelArtifact, Round, Stage, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)

RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`);
});
"""


def visit(page, url: str) -> list[str]:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return page.evaluate("window.cspViolations")


def test_the_pages_break_no_rule_of_the_policy(browser_page, live_server, make_user, manager):
    reviewer = make_user("rita", role=Role.REVIEWER)
    rows = pairwise_rows(3)
    rows[0]["responses"][0] = "Use this:\n\n```python\nprint('hello')\n```"
    campaign = make_campaign(manager=manager, reviewers=[reviewer], tasks=rows)
    base = ModelArtifact.objects.create(name="tiny-base", path="/nonexistent", created_by=manager)
    training_round = Round.objects.create(name="A round", preset=Round.Preset.SINGLE, base_model=base)
    run = TrainingRun.objects.create(round=training_round, stage=Stage.SFT, input_model=base, total_steps=4, step=1)
    job = DataJob.objects.create(
        kind=DataJob.Kind.IMPORT,
        status=DataJob.Status.RUNNING,
        campaign=campaign,
        file_name="tasks.jsonl",
        file_size=400,
        progress_total=400,
        created_by=manager,
    )
    ProgressFile(job.progress_path).write(done=100, rows=7)  # a quarter of the file read
    page = browser_page
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.add_init_script(RECORD_VIOLATIONS)

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", "correct horse battery")
    page.click("button.primary")
    violations = visit(page, f"{live_server.url}/review/{campaign.slug}/")
    expect(page.locator(".response-card").first).to_be_visible()
    code_colour = page.evaluate(
        "getComputedStyle(document.querySelector('pre code .k, pre code .nb') || document.body).color"
    )
    page.context.clear_cookies()

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", manager.username)
    page.fill("#id_password", "correct horse battery")
    page.click("button.primary")
    for path in (
        "/manage/",
        f"/manage/campaigns/{campaign.slug}/",
        f"/manage/campaigns/{campaign.slug}/import/",
        "/manage/datasets/",
        f"/manage/jobs/{job.pk}/",
        "/training/",
        f"/training/rounds/{training_round.pk}/",
        f"/training/runs/{run.pk}/",
        "/training/models/",
        "/training/rounds/new/",
        "/api/docs/",
    ):
        violations += visit(page, f"{live_server.url}{path}")
        if path == f"/training/runs/{run.pk}/":
            fill_width = page.locator(".progress-fill").first.evaluate("rect => rect.getBoundingClientRect().width")
            track_width = page.locator(".progress").first.evaluate("bar => bar.getBoundingClientRect().width")
        if path == f"/manage/jobs/{job.pk}/":
            job_fill = page.locator(".progress-fill").first.evaluate("rect => rect.getBoundingClientRect().width")
            job_track = page.locator(".progress").first.evaluate("bar => bar.getBoundingClientRect().width")
            expect(page.locator("[data-field=progress]")).to_contain_text("7 rows checked")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("RLHF Platform API")

    assert violations == []
    assert [error for error in console_errors if "Content Security Policy" in error] == []
    assert page.js_errors == []
    assert code_colour != page.evaluate("getComputedStyle(document.body).color")  # the nonce'd style applied
    assert fill_width == pytest.approx(track_width / 4, abs=2)  # 1 of 4 steps, drawn without a style attribute
    assert job_fill == pytest.approx(job_track / 4, abs=2)  # a quarter of the import's file
