"""The sweeps API: launch with field errors, list, detail with ranked trials, cancel and promote."""

from __future__ import annotations

import pytest

from tests.training.conftest import FAST_SETTINGS
from tests.training.sweeps import LEARNING_RATE, finish_trial, running_trials
from training.models import Round, Sweep

pytestmark = pytest.mark.django_db


def body(snapshot, model, **fields) -> dict:
    return {
        "stage": "dpo",
        "dataset": snapshot.pk,
        "base_model": model.pk,
        "search_space": [LEARNING_RATE, {"name": "beta", "type": "float", "low": 0.05, "high": 0.5, "log": True}],
        "n_trials": 3,
        "metric": "preference_accuracy",
        "settings": FAST_SETTINGS,
        **fields,
    }


def test_it_launches_lists_and_ranks_the_trials(manager_api, tiny_model, preference_snapshot):
    launched = manager_api.post("/api/training/sweeps/", body(preference_snapshot, tiny_model), format="json")
    assert launched.status_code == 201, launched.json()
    data = launched.json()
    assert (data["status"], data["direction"], data["trial_count"]) == ("running", "maximize", 1)
    [trial] = data["trials"]
    assert trial["state"] == "running" and set(trial["params"]) == {"learning_rate", "beta"}
    assert manager_api.get("/api/training/sweeps/").json()["results"][0]["id"] == data["id"]

    sweep = Sweep.objects.get(pk=data["id"])
    for value in (0.4, 0.9, 0.6):
        finish_trial(running_trials(sweep)[0], value)
    detail = manager_api.get(f"/api/training/sweeps/{sweep.pk}/").json()
    assert detail["status"] == "finished"
    assert [(t["rank"], t["number"], t["value"]) for t in detail["trials"]] == [(1, 1, 0.9), (2, 2, 0.6), (3, 0, 0.4)]
    assert detail["best_trial"] == detail["trials"][0]["round"]

    promoted = manager_api.post(f"/api/training/sweeps/{sweep.pk}/promote/")
    assert promoted.status_code == 200
    assert promoted.json()["promoted_model"] == detail["trials"][0]["model"] is not None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"search_space": [{**LEARNING_RATE, "low": -1}]}, "search_space.0.low"),
        ({"search_space": [{"name": "lr", "low": 1e-5, "high": 1e-3}]}, "search_space.0.name"),
        ({"search_space": [{"name": "learning_rate", "high": 1e-3}]}, "search_space.0.low"),
        ({"metric": "win_rat"}, "metric"),
        ({"n_trials": 0}, "n_trials"),
        ({"stage": "evaluate"}, "stage"),
    ],
)
def test_a_bad_launch_is_a_400_with_the_field_and_writes_nothing(
    manager_api, tiny_model, preference_snapshot, fields, field
):
    response = manager_api.post("/api/training/sweeps/", body(preference_snapshot, tiny_model, **fields), format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()
    assert not Sweep.objects.exists() and not Round.objects.exists()


def test_cancel_then_promote_without_a_completed_trial(manager_api, tiny_model, preference_snapshot):
    sweep_id = manager_api.post("/api/training/sweeps/", body(preference_snapshot, tiny_model), format="json").json()[
        "id"
    ]
    promoted = manager_api.post(f"/api/training/sweeps/{sweep_id}/promote/")
    assert promoted.status_code == 409 and "still running" in promoted.json()["detail"]
    cancelled = manager_api.post(f"/api/training/sweeps/{sweep_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["trials"][0]["status"] == "cancelled"
    assert manager_api.post(f"/api/training/sweeps/{sweep_id}/cancel/").status_code == 409
    assert manager_api.post(f"/api/training/sweeps/{sweep_id}/promote/").status_code == 409
