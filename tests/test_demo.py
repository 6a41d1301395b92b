"""`make demo` as a newcomer meets it, in a real Chromium.

The server is started by the Makefile's own `serve-demo` target, which `make demo` runs once
installed: DEBUG on, SQLite in a fresh VAR_DIR, the demo users and data, daphne, and
`manage.py worker` beside it. Only the model differs: a tiny local one instead of SmolLM2, so
that a round trains in seconds. A reviewer labels with the keyboard, a manager builds a dataset
and trains a round on it, and no request of the whole walk may answer 5xx.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from labeling.services.demo import REALISTIC_CAMPAIGN
from tests.conftest import clean_environment
from tests.servers import free_port, serving, sign_in
from tests.tiny_model import build_tiny_causal_lm

MANAGER_PASSWORD = "demo-manager-password"
REVIEWER_PASSWORD = "demo-reviewer-password"
# A request the server answered with 5xx, in daphne's access log ("GET /path" 500 123) or Django's error log.
SERVER_ERROR = re.compile(r'" 5\d\d \d|Internal Server Error')

pytestmark = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
    reason="the demo serves on its own SQLite database; it is walked in the suite's SQLite pass",
)


@pytest.fixture
def demo_server(tmp_path):
    """`make serve-demo` on a fresh VAR_DIR; yields its URL and its log (server and worker)."""
    model = build_tiny_causal_lm(tmp_path / "tiny-model")
    port = free_port()
    environment = clean_environment(
        VAR_DIR=str(tmp_path / "var"),
        DEMO_MANAGER_PASSWORD=MANAGER_PASSWORD,
        DEMO_REVIEWER_PASSWORD=REVIEWER_PASSWORD,
        # The worker picks up the round within a second and the page hears of it as quickly.
        TRAINING_POLL_S="1",
        TRAINING_HEARTBEAT_S="1",
        TRAINING_ENGINE_THREADS="1",
    )
    make = ["make", "--no-print-directory", "serve-demo", f"VENV={sys.prefix}", f"PORT={port}"]
    make += [f"DEMO_MODEL={model}", "DEMO_MODEL_NAME=tiny-llama"]
    log_path = tmp_path / "demo.log"
    base_url = f"http://127.0.0.1:{port}"
    # The first answer waits for migrate, the demo data and the model's registration.
    with serving([make], environment=environment, log_path=log_path, ready_url=f"{base_url}/healthz", timeout=180):
        yield base_url, log_path


def review_one_task(page, base_url: str, campaign_name: str, *keys: str) -> None:
    """Open the campaign from the review queue and answer one task with ``keys``, then Ctrl+Enter."""
    page.goto(f"{base_url}/review/")
    page.click(f"text={campaign_name}")
    page.wait_for_selector(".response-card")
    prompt = page.locator("#ws-prompt").text_content()
    for key in keys:
        page.keyboard.press(key)
    page.keyboard.press("Control+Enter")
    expect(page.locator("#done-today")).to_have_text("1")
    expect(page.locator("#ws-prompt")).not_to_have_text(prompt)


def test_a_newcomer_labels_builds_a_dataset_and_trains_a_round(demo_server, browser_page, tmp_path):
    base_url, log_path = demo_server
    page = browser_page
    server_errors: list[str] = []
    page.on(
        "response",
        lambda response: (
            response.status >= 500
            and server_errors.append(f"{response.status} {response.request.method} {response.url}")
        ),
    )

    # A reviewer answers a pairwise task and a ranking task from the keyboard.
    sign_in(page, base_url, "reviewer1", REVIEWER_PASSWORD)
    review_one_task(page, base_url, "Which answer is better?", "1")  # A much better
    review_one_task(page, base_url, "Rank four answers", "o")  # keep the order as shown

    # A manager builds a dataset from the Datasets page...
    sign_in(page, base_url, "manager", MANAGER_PASSWORD)
    page.goto(f"{base_url}/manage/datasets/")
    # The campaign that `seed_demo` fills with simulated reviewers' judgements.
    page.get_by_label(REALISTIC_CAMPAIGN.name).check()
    page.fill("#id_name", "Demo preferences")
    page.click("button:has-text('Build dataset')")
    # ... which the worker builds while the job's page follows it, then links to the snapshot.
    page.wait_for_url("**/manage/jobs/*/")
    page.click("[data-dataset-link]", timeout=120_000)
    page.wait_for_url("**/manage/datasets/*/")
    expect(page.locator("h1")).to_contain_text("Demo preferences")

    # ... then launches a one-stage DPO round on it and watches it succeed, without reloading.
    page.goto(f"{base_url}/training/rounds/new/")
    page.select_option("#id_preset", "single")
    page.select_option("#id_stage", "dpo")
    page.select_option("#id_base_model", label="tiny-llama")
    dataset = page.locator("#id_dataset option", has_text="Demo preferences").get_attribute("value")
    page.select_option("#id_dataset", dataset)
    page.fill("#id_max_steps", "3")
    page.fill("#id_batch_size", "2")
    page.click("summary:has-text('Advanced')")
    page.fill("#id_advanced", '{"max_length": 64}')
    page.click("button:has-text('Check and queue')")
    page.wait_for_url("**/training/rounds/*/")
    page.evaluate("window.stillTheSamePage = true")  # a reload would wipe it
    expect(page.locator(".page-header .badge")).to_have_text("Succeeded", timeout=180_000)
    assert page.evaluate("window.stillTheSamePage") is True
    # The round ended with its evaluate stage: a verdict on the held-out prompts, live too.
    expect(page.locator(".verdict [data-figure='preference_accuracy']")).to_contain_text("held-out human preferences")
    expect(page.locator(".verdict .badge").first).to_have_text(re.compile("Better|Worse|No clear change"))

    assert page.js_errors == []
    assert server_errors == []
    logged_errors = [line for line in Path(log_path).read_text().splitlines() if SERVER_ERROR.search(line)]
    assert logged_errors == [], "\n".join(logged_errors)
