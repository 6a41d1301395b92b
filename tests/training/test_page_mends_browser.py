"""In a real Chromium against daphne with DEBUG on (as `make demo` serves): the round page's own status
badge follows the round live (queued, running, succeeded) without a reload; metric values read as
people write them; chart axis labels are drawn whole inside their charts; the log tail shows no
terminal escapes. The worker's transitions are made by the services, from another process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from tests.conftest import REPO_ROOT, clean_environment
from tests.servers import daphne, sign_in

PASSWORD = "a-long-manager-password"

SEED = """
import json, django
django.setup()
from training.models import ModelArtifact, Round, RunMetric, Stage, TrainingRun
base = ModelArtifact.objects.create(name="tiny-base", path="/nonexistent")
training_round = Round.objects.create(name="Queued round", preset=Round.Preset.SINGLE, base_model=base)
run = TrainingRun.objects.create(
    round=training_round, stage=Stage.SFT, input_model=base, total_steps=3,
    latest_metrics={"num_parameters": 4884480, "loss": 0.69314718, "learning_rate": 1e-6, "rewards/accuracies": 0.77},
    log_tail=%(log)r,
)
for step, rate in enumerate((5e-6, 3e-6, 1e-6), start=1):
    RunMetric.objects.create(run=run, step=step * 1000, values={"learning_rate": rate, "loss": 0.7 - step / 100})
print(json.dumps({"round": training_round.pk, "run": run.pk}))
"""
LOG = "\x1b[32mLoading\x1b[0m\nTraining:  33%|\x1b[34m███▎\x1b[0m | 1/3\rTraining: 100%|██████████| 3/3\x1b[K\ndone"

START_THE_RUN = """
import django
django.setup()
from training.models import TrainingRun
from training.services.jobs import job_claim_next
job_claim_next(model=TrainingRun, worker="test-worker")
"""
FINISH_THE_ROUND = """
import django
django.setup()
from django.db import transaction
from training.models import JobStatus, Round, TrainingRun
from training.services.rounds import round_advance
with transaction.atomic():
    TrainingRun.objects.update(status=JobStatus.SUCCEEDED, step=3)
    round_advance(round_=Round.objects.get())
"""


@pytest.fixture
def served(tmp_path):
    """Daphne on a fresh SQLite database with a manager; returns (base_url, run_python)."""
    environment = clean_environment(
        DEBUG="1",
        VAR_DIR=str(tmp_path / "var"),
        TRAINING_LIVE_POLL_SECONDS="0.2",
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        DJANGO_SETTINGS_MODULE="rlhf_platform.settings",
    )

    def manage(*args: str) -> None:
        command = [sys.executable, "manage.py", *args]
        subprocess.run(command, cwd=REPO_ROOT, env=environment, check=True, capture_output=True, timeout=180)

    def run_python(code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    manage("migrate", "--noinput")
    manage("createsuperuser", "--noinput", "--username", "boss", "--email", "boss@example.com")
    with daphne(environment=environment, log_path=tmp_path / "daphne.log") as base_url:
        yield base_url, run_python


def labels_outside_their_chart(page) -> list[str]:
    """Axis labels of the page's metric charts whose drawn box pokes out of their SVG."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.metric-chart svg')].flatMap((svg) => {
            const box = svg.getBoundingClientRect();
            return [...svg.querySelectorAll('text.chart-axis')].filter((text) => {
                const r = text.getBoundingClientRect();
                return r.left < box.left - 0.5 || r.right > box.right + 0.5;
            }).map((text) => text.textContent);
        })"""
    )


def test_the_round_badge_follows_the_round_live_and_numbers_read_as_people_write_them(served, browser_page, tmp_path):
    base_url, run_python = served
    ids = json.loads(run_python(SEED % {"log": LOG}))
    page = browser_page
    sign_in(page, base_url, "boss", PASSWORD)

    page.goto(f"{base_url}/training/rounds/{ids['round']}/")
    badge = page.locator("[data-round-status]")
    expect(badge).to_have_text("Queued")
    expect(page.locator("[data-connection]")).to_contain_text("Live")
    metric_line = page.locator(".metric-line").inner_text()
    for shown in ("num_parameters 4.88 M", "loss 0.693", "learning_rate 1.00e-06", "rewards/accuracies 0.770"):
        assert shown in metric_line
    page.screenshot(path=str(tmp_path / "round-queued.png"), full_page=True)
    page.evaluate("window.stillTheSamePage = true")  # a reload would wipe it

    run_python(START_THE_RUN)
    expect(badge).to_have_text("Running", timeout=30_000)
    expect(badge).to_have_class("badge badge-run-running")
    run_python(FINISH_THE_ROUND)
    expect(badge).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator(".run-progress [data-field=status]")).to_have_text("Succeeded")
    expect(page.locator("button:has-text('Cancel round')")).to_have_count(0, timeout=30_000)
    assert page.evaluate("window.stillTheSamePage") is True
    page.screenshot(path=str(tmp_path / "round-succeeded.png"), full_page=True)

    page.goto(f"{base_url}/training/runs/{ids['run']}/")
    page.wait_for_selector(".metric-chart svg")
    axis = page.locator(".metric-chart text.chart-axis").all_text_contents()
    assert "1.00e-06" in axis and "5.00e-06" in axis and "3000" in axis
    assert labels_outside_their_chart(page) == []
    log_tail = page.locator(".log-tail").inner_text()
    assert log_tail == "Loading\nTraining: 100%|██████████| 3/3\ndone"
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
    assert page.js_errors == []
