"""In a real Chromium, against the stack `make demo` runs (daphne, and a worker beside it, on their
own database): a manager launches a training round and watches its progress bar move over the
websocket, without reloading, then cancels it from the run page."""

import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT, clean_environment
from tests.servers import daphne, sign_in
from tests.tiny_model import build_tiny_causal_lm

PASSWORD = "a-long-manager-password"


@pytest.fixture
def demo_stack(tmp_path):
    """Daphne and `manage.py worker` on a fresh SQLite database, with a manager and a tiny registered model."""
    environment = clean_environment(
        DEBUG="1",
        VAR_DIR=str(tmp_path / "var"),
        TRAINING_HEARTBEAT_S="1",
        TRAINING_POLL_S="1",
        TRAINING_ENGINE_THREADS="1",
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )

    def manage(*args: str) -> None:
        command = [sys.executable, "manage.py", *args]
        subprocess.run(command, cwd=REPO_ROOT, env=environment, check=True, capture_output=True, timeout=180)

    model = build_tiny_causal_lm(tmp_path / "tiny")
    manage("migrate", "--noinput")
    manage("createsuperuser", "--noinput", "--username", "boss", "--email", "boss@example.com")
    manage("register_model", str(model), "--name", "tiny-llama")
    with daphne(environment=environment, log_path=tmp_path / "demo.log", worker=True) as base_url:
        yield base_url


def progress_values(page) -> int:
    return int(page.locator(".run-progress [data-field=bar]").first.get_attribute("aria-valuenow") or 0)


def test_a_manager_launches_a_round_and_watches_it_train_live(demo_stack, browser_page, tmp_path):
    text = tmp_path / "domain.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. A good answer is correct and helpful.\n" * 50)
    page = browser_page
    sign_in(page, demo_stack, "boss", PASSWORD)

    page.goto(f"{demo_stack}/training/rounds/new/")
    page.select_option("#id_preset", "single")
    page.select_option("#id_stage", "pretrain")
    # Uploaded from the page (a path typed here would have to lie inside the server's data roots).
    page.set_input_files("#id_pretrain_file", str(text))
    page.select_option("#id_adapter", "full")
    page.fill("#id_max_steps", "3000")
    page.fill("#id_learning_rate", "0.001")
    page.click("summary:has-text('Advanced')")
    page.fill("#id_advanced", '{"max_length": 32, "batch_size": 2, "logging_steps": 25, "save_steps": 100000}')
    page.click("button:has-text('Check and queue')")
    page.wait_for_url("**/training/rounds/*/")
    # A marker that a reload would wipe: the page must update in place.
    page.evaluate("window.stillTheSamePage = true")

    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while len({value for value in seen if value > 0}) < 3:
        assert time.monotonic() < deadline, f"the progress bar did not move: {sorted(seen)}"
        seen.add(progress_values(page))
        time.sleep(0.2)
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.locator(".run-progress [data-field=status]").first.text_content().strip() == "Running"
    assert "Live" in page.locator("[data-connection]").inner_text()
    assert page.js_errors == []

    page.click(".stage-card h2 a")
    page.wait_for_selector(".metric-chart, .run-actions")
    page.click("button:has-text('Cancel run')")
    page.wait_for_selector(".badge-run-cancelled", timeout=60_000)
    page.wait_for_selector("button:has-text('Resume from the last checkpoint')", timeout=10_000)
    assert page.js_errors == []
