"""In a real Chromium against daphne and `manage.py worker` (as `make demo` runs them): the import page
uploads a file, then follows the worker's job through its progress to the counts, or to the bad lines,
without a reload; without the script, the form leads to the job's page, which follows the job too."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from tests.conftest import REPO_ROOT, clean_environment
from tests.servers import daphne, sign_in

PASSWORD = "a-long-manager-password"
ROWS = 20_000

SEED = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from labeling.services.campaigns import campaign_create, project_create
boss = get_user_model().objects.get(username="boss")
project = project_create(name="Imports", created_by=boss)
schema = {"questions": [{"id": "preference", "type": "pairwise"}]}
campaign = campaign_create(project=project, created_by=boss, name="Big import", question_schema=schema)
print(json.dumps({"slug": campaign.slug}))
"""


@pytest.fixture
def served(tmp_path):
    """Daphne and a worker on a fresh SQLite database with a manager; returns (base_url, campaign slug)."""
    environment = clean_environment(
        DEBUG="1",
        VAR_DIR=str(tmp_path / "var"),
        TRAINING_POLL_S="1",
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        DJANGO_SETTINGS_MODULE="rlhf_platform.settings",
    )

    def run(command: list[str]) -> str:
        done = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run([sys.executable, "manage.py", "migrate", "--noinput"])
    run([sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", "boss", "--email", "b@example.com"])
    slug = json.loads(run([sys.executable, "-c", SEED]))["slug"]
    with daphne(environment=environment, log_path=tmp_path / "daphne.log", worker=True) as base_url:
        yield base_url, slug


def write_tasks(path, rows: int, bad_line: int | None = None):
    with path.open("w") as out:
        for index in range(1, rows + 1):
            responses = ["only one"] if index == bad_line else [f"A{index}", f"B{index}"]
            out.write(json.dumps({"id": f"t{index}", "prompt": f"Question {index}?", "responses": responses}) + "\n")
    return path


def test_the_import_page_follows_the_job_to_the_counts_and_to_the_bad_lines(served, browser_page, tmp_path):
    base_url, slug = served
    page = browser_page
    sign_in(page, base_url, "boss", PASSWORD)
    page.goto(f"{base_url}/manage/campaigns/{slug}/import/")
    page.evaluate("window.stillTheSamePage = true")
    # Every text the progress line shows, to check the import's own progress was on screen.
    page.evaluate(
        """() => {
            window.progressTexts = [];
            const text = document.querySelector('[data-upload-text]');
            new MutationObserver(() => window.progressTexts.push(text.textContent))
                .observe(text, {childList: true, characterData: true, subtree: true});
        }"""
    )

    page.set_input_files("#id_file", str(write_tasks(tmp_path / "tasks.jsonl", ROWS)))
    page.click("[data-import-submit]")

    expect(page.locator("[data-count=created]")).to_have_text(str(ROWS), timeout=120_000)
    expect(page.locator("[data-count=skipped_duplicates]")).to_have_text("0")
    assert page.evaluate("window.stillTheSamePage") is True
    texts = page.evaluate("window.progressTexts")
    assert any(text.startswith("Importing:") and "rows checked" in text for text in texts), texts

    # A file with a bad line: the line and its reason, and nothing imported.
    page.set_input_files("#id_file", str(write_tasks(tmp_path / "bad.jsonl", 50, bad_line=37)))
    page.click("[data-import-submit]")
    error = page.locator(".result-error")
    expect(error).to_contain_text("Line 37", timeout=60_000)
    expect(error.locator("table.row-errors td.num")).to_have_text(["37"])
    assert page.evaluate("window.stillTheSamePage") is True

    # The recent imports, listed on the page after a reload, lead to each job's page.
    page.reload()
    expect(page.locator("text=Recent imports")).to_be_visible()
    page.get_by_role("link", name="1", exact=True).click()
    expect(page.locator("[data-count=created]")).to_have_text(str(ROWS))
    assert page.js_errors == []


def test_without_the_script_the_form_leads_to_a_job_page_that_follows_the_job(served, chromium, tmp_path):
    base_url, slug = served
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, base_url, "boss", PASSWORD)
        page.goto(f"{base_url}/manage/campaigns/{slug}/import/")
        page.set_input_files("#id_file", str(write_tasks(tmp_path / "tasks.jsonl", 5)))
        page.click("[data-import-submit]")
        page.wait_for_url("**/manage/jobs/*/")
        # Without a script, the page reloads itself (a <noscript> refresh) until the job ends.
        expect(page.locator("[data-count=created]")).to_have_text("5", timeout=60_000)
    finally:
        context.close()
