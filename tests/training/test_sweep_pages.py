"""The sweep pages: launch form (defaults, errors on the row at fault), the ranked page with its charts,
cancel and promote buttons, and the promoted model marked and offered first."""

from __future__ import annotations

import pytest

from tests.training.sweeps import finish_trial, launch, log_losses, running_trials, trained_run
from training.models import ModelArtifact, Sweep

pytestmark = pytest.mark.django_db


def form_data(snapshot, model, **fields) -> dict:
    data = {
        "stage": "dpo",
        "base_model": model.pk,
        "dataset": snapshot.pk,
        "n_trials": 2,
        "parallel": 1,
        "metric": "preference_accuracy",
        "pruner": "none",
        "prune_on": "loss",
        "seed": 0,
        "adapter": "full",
        "max_steps": 2,
        "batch_size": 2,
        "max_length": 64,
        "p0_on": "on",
        "p0_low": "1e-6",
        "p0_high": "1e-3",
        "p0_log": "on",
    }
    data.update(fields)
    return {name: value for name, value in data.items() if value is not None}


def test_the_form_offers_a_log_learning_rate_range_by_default(manager_client):
    page = manager_client.get("/training/sweeps/new/").content.decode()
    assert 'name="p0_on"' in page and 'value="1e-06"' in page and 'value="0.001"' in page


def test_a_log_range_from_zero_is_refused_on_its_row(manager_client, tiny_model, preference_snapshot):
    response = manager_client.post("/training/sweeps/new/", form_data(preference_snapshot, tiny_model, p0_low="0"))
    assert response.status_code == 200
    assert "On a log scale low must be &gt; 0" in response.content.decode()
    assert response.context["form"].errors["p0_low"]
    assert not Sweep.objects.exists()


def test_nothing_searched_is_refused(manager_client, tiny_model, preference_snapshot):
    response = manager_client.post("/training/sweeps/new/", form_data(preference_snapshot, tiny_model, p0_on=None))
    assert "Tick at least one parameter" in response.content.decode() and not Sweep.objects.exists()


def test_it_launches_and_the_page_ranks_plots_and_promotes(manager_client, tiny_model, preference_snapshot):
    response = manager_client.post("/training/sweeps/new/", form_data(preference_snapshot, tiny_model))
    sweep = Sweep.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/training/sweeps/{sweep.pk}/"
    for value in (0.5, 0.75):
        trial = running_trials(sweep)[0]
        log_losses(trial, {1: 0.9, 2: 0.7})
        finish_trial(trial, value)
    page = manager_client.get(f"/training/sweeps/{sweep.pk}/").content.decode()
    assert "Promote best" in page and "Cancel sweep" not in page
    assert "scatter-best" in page and "log scale" in page  # the learning rate on a log axis, best highlighted
    assert page.count("series-line series-") >= 2  # both trials' loss curves
    assert "trial 1 (complete)" in page

    promoted = manager_client.post(f"/training/sweeps/{sweep.pk}/promote/")
    assert promoted.status_code == 302
    sweep.refresh_from_db()
    model = trained_run(sweep.trials.get(trial_number=1)).output_model
    assert sweep.promoted_model == model
    assert f"Best of sweep {sweep.name}" in manager_client.get("/training/models/").content.decode()
    launch_page = manager_client.get("/training/rounds/new/").content.decode()
    assert f'<option value="{model.pk}" selected>' in launch_page
    # A LoRA or bottleneck trial's output is an adapter: still the policy offered first.
    ModelArtifact.objects.filter(pk=model.pk).update(kind=ModelArtifact.Kind.ADAPTER)
    for page in ("/training/rounds/new/", "/training/generate/", "/training/sweeps/new/"):
        assert f'<option value="{model.pk}" selected>' in manager_client.get(page).content.decode(), page


def test_trial_text_is_escaped(manager_client, tiny_model, preference_snapshot, manager):
    sweep = launch(preference_snapshot, tiny_model, manager, name="<script>alert(1)</script>")
    page = manager_client.get(f"/training/sweeps/{sweep.pk}/").content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_cancel_from_the_page(manager_client, tiny_model, preference_snapshot, manager):
    sweep = launch(preference_snapshot, tiny_model, manager)
    assert manager_client.post(f"/training/sweeps/{sweep.pk}/cancel/").status_code == 302
    sweep.refresh_from_db()
    assert sweep.status == Sweep.Status.CANCELLED
    assert "Cancelled" in manager_client.get("/training/sweeps/").content.decode()


def test_a_trials_round_page_names_its_sweep_and_why_it_failed(
    manager_client, tiny_model, preference_snapshot, manager
):
    from tests.training.sweeps import fail_trial

    sweep = launch(preference_snapshot, tiny_model, manager)
    trial = running_trials(sweep)[0]
    fail_trial(trial)
    page = manager_client.get(f"/training/rounds/{trial.pk}/").content.decode()
    assert f'Trial 0 of the sweep <a href="/training/sweeps/{sweep.pk}/">' in page
    assert "failed (The dpo stage failed: CUDA out of memory)" in page
