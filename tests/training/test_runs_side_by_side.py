"""Any runs side by side: their specs as one table, differing rows highlighted, curves on shared axes."""

from __future__ import annotations

import pytest

from training.comparisons import flatten, spec_table
from training.models import JobStatus, ModelArtifact, Round, RunMetric, Stage, TrainingRun

pytestmark = pytest.mark.django_db


def spec(method: str, rate: float, output: str) -> dict:
    return {
        "stage": "sft",
        "model": "/models/tiny",
        "output_dir": output,
        "dataset": f"{output}/train.jsonl",
        "learning_rate": rate,
        "max_steps": 2,
        "adapter": {"method": method, "r": 16},
    }


@pytest.fixture
def runs(tmp_path) -> list[TrainingRun]:
    base = ModelArtifact.objects.create(name="tiny", path=str(tmp_path))
    round_ = Round.objects.create(name="<b>Round</b>", preset=Round.Preset.SINGLE, base_model=base, variant="lora")
    made = []
    for index, (method, rate) in enumerate((("lora", 2e-4), ("full", 2e-5))):
        run = TrainingRun.objects.create(
            round=round_ if index == 0 else None,
            stage=Stage.SFT,
            status=JobStatus.SUCCEEDED,
            input_model=base,
            spec=spec(method, rate, f"/work/run-{index}"),
        )
        for step in (1, 2):
            RunMetric.objects.create(run=run, step=step, values={"loss": 3.0 - step * (index + 1) * 0.1})
        made.append(run)
    return made


def compare_url(*ids) -> str:
    return "/training/runs/compare/?" + "&".join(f"run={pk}" for pk in ids)


def row_of(page: str, field: str) -> str:
    return (
        page.split(f'data-field="{field}"')[0].rsplit("<tr", 1)[1]
        + page.split(f'data-field="{field}"')[1].split("</tr>")[0]
    )


def test_differing_fields_are_highlighted_and_the_rest_are_not(runs, manager_client):
    response = manager_client.get(compare_url(*(run.pk for run in runs)))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'class="differs"' in row_of(page, "adapter.method") and "lora" in row_of(page, "adapter.method")
    assert 'class="differs"' in row_of(page, "learning_rate")
    assert 'class="differs"' not in row_of(page, "adapter.r") and 'class="differs"' not in row_of(page, "max_steps")
    # Each run's own output directory always differs: shown, not flagged.
    assert 'class="per-run"' in row_of(page, "output_dir") and "/work/run-1" in page
    assert "&lt;b&gt;Round&lt;/b&gt;" in page and "<b>Round</b>" not in page  # user text is escaped
    # The curves, one colour per run, with a legend naming each run.
    assert "series-0" in page and "series-1" in page and f"sft run {runs[0].pk} · lora" in page


def test_only_the_differing_rows_on_request(runs, manager_client):
    page = manager_client.get(compare_url(*(run.pk for run in runs)) + "&differing=1").content.decode()
    assert 'data-field="adapter.method"' in page and 'data-field="learning_rate"' in page
    assert 'data-field="adapter.r"' not in page and 'data-field="output_dir"' not in page
    assert "Show every row" in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "Pick 2 to 8 runs"),
        ("run=1", "Pick 2 to 8 runs"),
        ("&".join(f"run={i}" for i in range(1, 10)), "Pick 2 to 8 runs"),
        ("run=1&run=abc", "whole numbers"),
        ("run=999998&run=999999", "There is no run 999998"),
    ],
)
def test_a_bad_pick_is_a_clear_400(db, manager_client, query, message):
    response = manager_client.get("/training/runs/compare/?" + query)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_the_api_gives_the_spec_rows_and_series(runs, manager_api):
    response = manager_api.get("/api/training/runs/compare/", {"run": [run.pk for run in runs]})
    assert response.status_code == 200
    data = response.json()
    rows = {row["field"]: row for row in data["rows"]}
    assert rows["adapter.method"] == {
        "field": "adapter.method",
        "values": ["lora", "full"],
        "differs": True,
        "per_run": False,
    }
    assert rows["max_steps"]["differs"] is False and rows["output_dir"]["per_run"] is True
    assert [s["run"] for s in data["series"]] == [run.pk for run in runs]
    assert [p[0] for p in data["series"][0]["metric_series"]["train"]["loss"]] == [1, 2]
    bad = manager_api.get("/api/training/runs/compare/", {"run": [runs[0].pk]})
    assert bad.status_code == 400 and bad.json()["errors"]["run"]


def test_the_training_page_lets_a_manager_tick_runs(runs, manager_client):
    page = manager_client.get("/training/").content.decode()
    assert 'action="/training/runs/compare/"' in page and 'method="get"' in page
    for run in runs:
        assert f'name="run" value="{run.pk}"' in page


def test_flatten_and_a_run_without_a_spec_yet():
    assert flatten({"adapter": {"method": "lora", "target_modules": ["q", "v"]}, "seed": 1}) == {
        "adapter.method": "lora",
        "adapter.target_modules": ["q", "v"],
        "seed": 1,
    }
    rows = spec_table([{"stage": "sft"}, {"stage": "dpo"}], [{"beta": 0.1}, {}])
    assert rows[0] == {"field": "stage", "values": ["sft", "dpo"], "differs": True, "per_run": False}
    assert rows[1] == {"field": "beta", "values": ["0.1", "—"], "differs": True, "per_run": False}
