"""The comparison page, its CSV and Markdown downloads and its API: the numbers are the runs' own."""

from __future__ import annotations

import csv
import io
import re

import pytest

from training.formatting import format_figure, format_metric
from training.models import Comparison, JobStatus, Round, RunMetric
from training.services.comparisons import comparison_launch

pytestmark = pytest.mark.django_db

# Final metrics as the engine reports them, per variant.
METRICS = {
    "lora": {
        "trainable_parameters": 24576,
        "total_parameters": 120000,
        "trainable_percent": 20.48,
        "peak_memory_bytes": 3 * 2**20,
        "train_runtime": 1.5,
        "train_seconds_per_step": 0.5,
        "train_tokens_per_second": 800.0,
        "train_loss": 5.9,
        "eval_loss": 5.8,
        "rewards/accuracies": 0.75,
    },
    "full": {
        "trainable_parameters": 120000,
        "total_parameters": 120000,
        "trainable_percent": 100.0,
        "train_runtime": 2.5,
        "train_seconds_per_step": 0.8,
        "train_tokens_per_second": 500.0,
        "train_loss": 5.5,
        # No eval_loss and no peak memory: an older engine, or a stage that does not measure it.
    },
}


def report(accuracy: float, verdict: str) -> dict:
    figure = {
        "name": "preference_accuracy",
        "label": "Agreement with held-out human preferences",
        "unit": "share",
        "better": "higher",
        "new": accuracy,
        "base": 0.5,
    }
    return {"figures": [figure], "summary": {"verdict": verdict, "reason": "", "warnings": []}}


@pytest.fixture
def comparison(tiny_model, preference_snapshot, manager) -> Comparison:
    """A launched comparison whose variants finished with known figures."""
    comparison = comparison_launch(
        kind="adapters",
        stage="sft",
        variants=["lora", "full"],
        base_model=tiny_model,
        dataset=preference_snapshot,
        launched_by=manager,
        seed=3,
        max_steps=2,
        settings={"batch_size": 2},
    )
    for round_ in comparison.rounds.all():
        training, evaluate = round_.runs.order_by("position")
        training.status, training.final_metrics = JobStatus.SUCCEEDED, METRICS[round_.variant]
        training.save()
        for step, loss in ((1, 6.0), (2, METRICS[round_.variant]["train_loss"])):
            RunMetric.objects.create(run=training, step=step, values={"loss": loss})
        evaluate.status = JobStatus.SUCCEEDED
        evaluate.final_metrics = {"report": report(0.75 if round_.variant == "lora" else 0.5, "better")}
        evaluate.save()
        round_.status = Round.Status.SUCCEEDED
        round_.save()
    return comparison


def test_the_page_shows_each_variants_stored_figures_and_marks_the_best(comparison, manager_client):
    page = manager_client.get(f"/training/comparisons/{comparison.pk}/").content.decode()
    for variant, metrics in METRICS.items():
        assert f'data-variant="{variant}"' in page
        for name in ("trainable_parameters", "train_runtime", "train_tokens_per_second", "train_loss"):
            assert f'data-value="{metrics[name]}"' in page
            # Columns with a unit name it in their header; their cells hold the bare number.
            assert format_metric(metrics[name], "" if name == "train_tokens_per_second" else name) in page
    assert "Throughput (tokens/s)" in page and "Peak memory (MiB)" in page
    assert format_metric(3.0) in page  # 3 MiB
    assert format_figure(0.75, "share") in page and format_figure(0.5, "share") in page
    # Best per column: fewest trainable parameters (LoRA), lowest training loss (full), most tokens/s (LoRA).
    live = manager_client.get(f"/training/comparisons/{comparison.pk}/live/").content.decode()
    lora_row = live.split('data-variant="lora"')[1].split("</tr>")[0]
    full_row = live.split('data-variant="full"')[1].split("</tr>")[0]
    assert '<strong title="Best of the column">24.6 k</strong>' in lora_row
    assert '<strong title="Best of the column">5.50</strong>' in full_row
    assert '<strong title="Best of the column">800</strong>' in lora_row
    assert "—" in full_row  # no held-out loss, no peak memory
    assert "Peak memory (MiB)" in page and "Throughput (tokens/s)" in page
    # Overlaid curves: one series per variant, with a legend.
    assert "series-0" in page and "series-1" in page and "chart-legend" in page


def test_a_finished_comparisons_page_is_not_re_read(comparison, manager_client):
    page = manager_client.get(f"/training/comparisons/{comparison.pk}/").content.decode()
    assert "data-poll-url" not in page


def test_the_csv_holds_the_stored_values_as_they_are(comparison, manager_client):
    response = manager_client.get(f"/training/comparisons/{comparison.pk}/?format=csv")
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["variant"] for row in rows] == ["lora", "full"]
    for row in rows:
        metrics = METRICS[row["variant"]]
        for name in ("trainable_parameters", "trainable_percent", "train_runtime", "train_loss"):
            assert float(row[name]) == metrics[name]
        assert row["status"] == "succeeded"
    assert rows[0]["peak_memory_bytes"] == str(3 * 2**20) and rows[1]["peak_memory_bytes"] == ""
    assert rows[0]["evaluate.preference_accuracy"] == "0.75" and rows[0]["evaluate.verdict"] == "better"
    assert rows[0]["rewards/accuracies"] == "0.75" and rows[1]["rewards/accuracies"] == ""


def test_the_markdown_is_a_table_with_units_fit_for_a_report(comparison, manager_client):
    response = manager_client.get(f"/training/comparisons/{comparison.pk}/?format=md")
    assert response["Content-Type"].startswith("text/markdown")
    text = response.content.decode()
    assert text.startswith(f"## {comparison.name}")
    assert "- Seed 3, budget 2 steps per variant" in text
    header = next(line for line in text.splitlines() if line.startswith("| Variant"))
    assert "Peak memory (MiB)" in header and "Wall time (s)" in header and "Throughput (tokens/s)" in header
    lora = next(line for line in text.splitlines() if line.startswith("| lora"))
    assert "**24.6 k**" in lora and "| **1.50** |" in lora and "| 3 |" in lora and "**75.0%**" in lora
    assert "- Shared settings: batch_size=2" in text
    full = next(line for line in text.splitlines() if line.startswith("| full"))
    assert "**5.50**" in full and "| — |" in full


def test_markdown_cells_keep_user_text_from_breaking_the_table():
    from training.comparisons import table_markdown, variant_table

    table = variant_table([{"variant": "a|b", "status": "queued", "metrics": {}, "report": None}])
    text = table_markdown(table, title="<script>x</script> | y\nz", facts=[])
    assert text.splitlines()[0] == "## &lt;script&gt;x&lt;/script&gt; \\| y z"
    assert "| a\\|b | queued |" in text


def test_an_unknown_format_is_refused(comparison, manager_client):
    response = manager_client.get(f"/training/comparisons/{comparison.pk}/?format=xlsx")
    assert response.status_code == 400 and b"csv or md" in response.content


def test_the_api_gives_the_rows_of_the_page(comparison, manager_api):
    data = manager_api.get(f"/api/training/comparisons/{comparison.pk}/").json()
    assert data["variants"] == ["lora", "full"] and data["seed"] == 3 and data["max_steps"] == 2
    rows = {row["variant"]: row for row in data["rows"]}
    for variant, metrics in METRICS.items():
        values = rows[variant]["values"]
        assert values["trainable_parameters"] == metrics["trainable_parameters"]
        assert values["train_loss"] == metrics["train_loss"]
    assert "trainable_parameters" in rows["lora"]["best"] and "train_loss" in rows["full"]["best"]
    assert rows["full"]["values"]["eval_loss"] is None
    keys = [column["key"] for column in data["columns"]]
    assert "evaluate.preference_accuracy" in keys and "peak_memory_bytes" in keys
    listing = manager_api.get("/api/training/comparisons/").json()
    assert [c["id"] for c in listing["results"]] == [comparison.pk]
    assert listing["results"][0]["rounds"] == {r.variant: r.pk for r in comparison.rounds.all()}


def test_the_list_links_each_comparison_and_its_rounds(comparison, manager_client):
    page = manager_client.get("/training/comparisons/").content.decode()
    assert f"/training/comparisons/{comparison.pk}/" in page
    for round_ in comparison.rounds.all():
        assert f"/training/rounds/{round_.pk}/" in page


def test_reviewers_cannot_see_or_launch_comparisons(comparison, reviewer_client):
    assert reviewer_client.get(f"/training/comparisons/{comparison.pk}/?format=csv").status_code == 403
    assert reviewer_client.post("/training/comparisons/new/", {}).status_code == 403


def test_a_manager_launches_from_the_form_and_a_refused_variant_is_on_its_field(
    tiny_model, preference_snapshot, manager_client
):
    form = {
        "kind": "alignment",
        "adapter": "lora",
        "alignment_variants": ["dpo", "ppo"],
        "base_model": tiny_model.pk,
        "dataset": preference_snapshot.pk,
        "seed": "5",
        "max_steps": "2",
        "evaluate": "on",
    }
    refused = manager_client.post("/training/comparisons/new/", form)
    assert refused.status_code == 200 and not Comparison.objects.exists()
    errors = refused.context["form"].errors
    assert errors["alignment_variants"][0].startswith("ppo: ") and errors["reward_model"][0].startswith("ppo: ")

    form.update(kind="adapters", stage="sft", adapter_variants=["lora", "ia3"])
    launched = manager_client.post("/training/comparisons/new/", form)
    comparison = Comparison.objects.get()
    assert launched.status_code == 302 and launched["Location"] == f"/training/comparisons/{comparison.pk}/"
    assert comparison.variants == ["lora", "ia3"] and comparison.seed == 5
    page = manager_client.get(launched["Location"]).content.decode()
    assert "data-poll-url" in page and 'data-variant="ia3"' in page  # re-read while its variants are queued
    round_page = manager_client.get(f"/training/rounds/{comparison.rounds.first().pk}/").content.decode()
    assert f'href="/training/comparisons/{comparison.pk}/"' in round_page


def test_the_form_offers_the_engines_methods(manager_client):
    page = manager_client.get("/training/comparisons/new/").content.decode()
    for method in ("lora", "ia3", "full", "freeze", "qlora"):
        assert f'value="{method}"' in page
    assert 'value="dpo"' in page and 'value="ppo"' in page
    # qlora is offered unticked (it needs a CUDA worker); the others are ticked.
    inputs = {
        re.search(r'value="(\w+)"', tag).group(1): tag for tag in re.findall(r"<input[^>]*adapter_variants[^>]*>", page)
    }
    assert "checked" not in inputs["qlora"] and all("checked" in inputs[m] for m in ("lora", "ia3", "full", "freeze"))


def test_the_api_refuses_a_bad_variant_with_field_errors_and_queues_nothing(
    tiny_model, preference_snapshot, manager_api
):
    body = {
        "kind": "alignment",
        "adapter": "lora",
        "variants": ["dpo", "ppo"],
        "base_model": tiny_model.pk,
        "dataset": preference_snapshot.pk,
        "max_steps": 2,
    }
    response = manager_api.post("/api/training/comparisons/", body, format="json")
    assert response.status_code == 400
    data = response.json()
    assert data["detail"].startswith("Variant ppo: ")
    assert data["errors"]["variants"].startswith("ppo: ") and data["errors"]["reward_model"].startswith("ppo: ")
    assert not Comparison.objects.exists() and not Round.objects.exists()
    unknown = manager_api.post("/api/training/comparisons/", {**body, "variants": ["dpo", "sft"]}, format="json")
    assert unknown.status_code == 400 and "'sft' is not one of" in unknown.json()["errors"]["variants"]


def test_cells_under_a_unit_hold_whole_numbers_from_a_thousand_up():
    from training.comparisons import TRAINING_COLUMNS

    columns = {column.key: column for column in TRAINING_COLUMNS}
    assert columns["peak_memory_bytes"].text(1_236_033_536) == "1,179"  # MiB, not "1.18 k"
    assert columns["peak_memory_bytes"].text(3 * 2**20) == "3"
    assert columns["train_tokens_per_second"].text(812.4) == "812"
    assert columns["trainable_parameters"].text(24576) == "24.6 k"  # no unit: the metric's own format
