"""In a real Chromium: a manager ticks two runs on the training page, presses "Compare ticked runs",
and sees the runs' specs with the differing rows highlighted, then their curves on shared axes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rlhf_platform.roles import Role
from training.models import JobStatus, ModelArtifact, Round, RunMetric, Stage, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def shots_dir(tmp_path: Path) -> Path:
    # SCREENSHOTS_DIR keeps them for a look by eye; otherwise they go with the test's temporary files.
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def make_runs(tmp_path: Path) -> list[TrainingRun]:
    base = ModelArtifact.objects.create(name="tiny-base", path=str(tmp_path))
    runs = []
    for index, (method, rate) in enumerate((("lora", 2e-4), ("ia3", 2e-4), ("full", 2e-5))):
        round_ = Round.objects.create(
            name=f"SFT with {method}", preset=Round.Preset.SINGLE, base_model=base, status=Round.Status.SUCCEEDED
        )
        spec = {
            "stage": "sft",
            "model": str(tmp_path),
            "output_dir": f"{tmp_path}/run-{index}",
            "seed": 42,
            "max_steps": 20,
            "learning_rate": rate,
            "adapter": {"method": method, "r": 16},
        }
        run = TrainingRun.objects.create(
            round=round_, stage=Stage.SFT, status=JobStatus.SUCCEEDED, input_model=base, spec=spec
        )
        for step in range(1, 21):
            RunMetric.objects.create(run=run, step=step, values={"loss": 3.0 / (1 + step * (index + 1) / 10)})
        runs.append(run)
    return runs


def test_a_manager_ticks_two_runs_and_sees_them_side_by_side(make_user, signed_in_page, live_server, tmp_path):
    make_user("mona", role=Role.MANAGER)
    lora, _ia3, full = make_runs(tmp_path)
    page = signed_in_page("mona")
    violations: list[str] = []
    page.on("console", lambda message: "Content Security Policy" in message.text and violations.append(message.text))

    page.goto(f"{live_server.url}/training/")
    page.check(f"input[name=run][value='{lora.pk}']")
    page.check(f"input[name=run][value='{full.pk}']")
    page.click("text=Compare ticked runs")
    page.wait_for_selector("table.spec-diff")
    # In the page's order: the newest round first.
    assert page.url == f"{live_server.url}/training/runs/compare/?run={full.pk}&run={lora.pk}"

    method = page.locator("tr[data-field='adapter.method']")
    assert "differs" in method.get_attribute("class")
    assert method.locator("td").all_inner_texts() == ["full", "lora"]
    # The highlight is visible: the row's background is not the table's.
    background = method.evaluate("row => getComputedStyle(row).backgroundColor")
    same = page.locator("tr[data-field='max_steps']").evaluate("row => getComputedStyle(row).backgroundColor")
    assert background != same
    learning_rate = page.locator("tr[data-field='learning_rate']")
    assert learning_rate.get_attribute("class") == "differs"
    assert learning_rate.locator("td").all_inner_texts() == ["2e-5", "2e-4"]  # as people write a rate

    charts = page.locator(".overlay-grid figure")
    assert charts.count() >= 1
    loss = page.locator("figure:has(figcaption:has-text('loss'))").first
    assert loss.locator("polyline.series-0").count() == 1 and loss.locator("polyline.series-1").count() == 1
    assert loss.locator("text.chart-axis-title").text_content() == "step"
    assert page.locator(".chart-legend li").all_inner_texts() == [
        f"sft run {full.pk} · SFT with full",
        f"sft run {lora.pk} · SFT with lora",
    ]
    page.screenshot(path=str(shots_dir(tmp_path) / "runs-side-by-side.png"), full_page=True)

    page.click("text=/Show only the \\d+ differing rows?/")
    page.wait_for_selector("text=Show every row")
    fields = page.locator("table.spec-diff tbody tr").evaluate_all("rows => rows.map(r => r.dataset.field)")
    assert "adapter.method" in fields and "max_steps" not in fields and "adapter.r" not in fields
    page.screenshot(path=str(shots_dir(tmp_path) / "runs-side-by-side-differing.png"), full_page=True)
    assert violations == [] and page.js_errors == []


def test_the_comparison_page_reads_well_and_follows_the_csp(
    manager, tiny_model, preference_snapshot, signed_in_page, live_server, tmp_path
):
    from tests.training.test_comparison_pages import METRICS, report
    from training.services.comparisons import comparison_launch

    comparison = comparison_launch(
        kind="adapters",
        stage="sft",
        variants=["lora", "full"],
        base_model=tiny_model,
        dataset=preference_snapshot,
        launched_by=manager,
        max_steps=2,
    )
    for round_ in comparison.rounds.all():
        training, evaluate = round_.runs.order_by("position")
        training.status, training.final_metrics = JobStatus.SUCCEEDED, METRICS[round_.variant]
        training.save()
        for step in range(1, 11):
            RunMetric.objects.create(
                run=training, step=step, values={"loss": 6.0 - step * (0.1 if round_.variant == "lora" else 0.2)}
            )
        evaluate.status = JobStatus.SUCCEEDED
        evaluate.final_metrics = {"report": report(0.75 if round_.variant == "lora" else 0.5, "better")}
        evaluate.save()
    page = signed_in_page(manager.username)
    violations: list[str] = []
    page.on("console", lambda message: "Content Security Policy" in message.text and violations.append(message.text))
    page.goto(f"{live_server.url}/training/comparisons/{comparison.pk}/")
    page.wait_for_selector("table.comparison-table")
    assert page.locator("td.best").count() >= 4
    assert page.locator(".chart-legend li").all_inner_texts() == ["lora", "full"]
    page.screenshot(path=str(shots_dir(tmp_path) / "comparison.png"), full_page=True)
    with page.expect_download() as download:
        page.click("text=Download Markdown")
    assert download.value.suggested_filename == f"comparison-{comparison.pk}.md"
    assert violations == [] and page.js_errors == []
