"""A sweep's life without the engine: trials asked from the rebuilt study, queued one after another as
rounds end, failed and pruned trials, the best trial, cancel and promote."""

from __future__ import annotations

import pytest

from rlhf_platform.audit import Action
from tests.training.sweeps import fail_trial, finish_trial, launch, log_losses, running_trials, trained_run
from training.errors import Conflict
from training.models import JobStatus, Round, Sweep, TrialState
from training.services import sweeps as sweep_services
from training.services.runs import run_record_event
from training.services.sweeps import sweep_cancel, sweep_promote

pytestmark = pytest.mark.django_db


@pytest.fixture
def sweep(tiny_model, preference_snapshot, manager) -> Sweep:
    return launch(preference_snapshot, tiny_model, manager, seed=5)


def test_the_first_trial_is_a_queued_round_of_the_stage_then_evaluate(sweep):
    [trial] = running_trials(sweep)
    assert (trial.trial_number, trial.preset) == (0, Round.Preset.SINGLE)
    assert [(run.stage, run.status) for run in trial.runs.order_by("position")] == [
        ("dpo", "queued"),
        ("evaluate", "waiting"),
    ]
    rate = trial.trial_params["learning_rate"]
    assert 1e-6 <= rate <= 1e-2 and trained_run(trial).params["learning_rate"] == rate
    assert "learning_rate" not in trial.runs.get(stage="evaluate").params
    assert sweep.direction == "maximize"  # derived from the metric


def test_trials_leave_the_benchmarks_out_of_their_evaluation_unless_asked(
    sweep, tiny_model, preference_snapshot, manager
):
    [trial] = running_trials(sweep)
    assert trial.runs.get(stage="evaluate").params["advanced"]["benchmarks"] == []
    asked = launch(
        preference_snapshot,
        tiny_model,
        manager,
        stage_settings={"evaluate": {"advanced": {"benchmarks": ["arc_easy"]}}},
    )
    [trial] = running_trials(asked)
    assert trial.runs.get(stage="evaluate").params["advanced"]["benchmarks"] == ["arc_easy"]


def test_trials_are_queued_one_after_another_as_rounds_end(sweep):
    values = [0.5, 0.8, 0.6, 0.7]
    for number, value in enumerate(values):
        [trial] = running_trials(sweep)
        assert trial.trial_number == number
        finish_trial(trial, value)
    sweep.refresh_from_db()
    assert sweep.status == Sweep.Status.FINISHED and sweep.finished_at is not None
    assert sweep.trials.count() == 4 and not running_trials(sweep)
    assert sweep.best_trial.trial_number == 1 and sweep.best_trial.trial_value == 0.8
    assert sorted(sweep.trials.values_list("trial_state", flat=True)) == [TrialState.COMPLETE] * 4


def test_parallel_trials_are_queued_together_with_different_parameters(tiny_model, preference_snapshot, manager):
    sweep = launch(preference_snapshot, tiny_model, manager, n_trials=3, parallel=2)
    first, second = running_trials(sweep)
    assert (first.trial_number, second.trial_number) == (0, 1)
    assert first.trial_params != second.trial_params
    finish_trial(first, 0.5)
    assert [trial.trial_number for trial in running_trials(sweep)] == [1, 2]


def test_the_replayed_study_asks_the_same_parameters_and_never_a_finished_number(sweep, tiny_model, manager):
    [first] = running_trials(sweep)
    finish_trial(first, 0.5)
    [second] = running_trials(sweep)
    # The same history, rebuilt from the rows, asks the same trial: the second trial's parameters
    # again from the first one alone, and twice the same third trial with the second one running.
    locked = Sweep.objects.get(pk=sweep.pk)
    replayed = sweep_services._study(locked, [first], 1).ask(sweep_services._distributions(locked))
    assert replayed.params == second.trial_params
    asked = sweep_services._ask(locked)
    assert asked == sweep_services._ask(locked) and asked[0] == 2
    assert asked[1] != second.trial_params
    finish_trial(second, 0.6)
    numbers = set(sweep.trials.values_list("trial_number", flat=True))
    assert numbers == {0, 1, 2} and sweep_services._ask(locked)[0] == 3


def test_a_failed_trial_counts_as_failed_and_the_sweep_goes_on(sweep):
    [trial] = running_trials(sweep)
    fail_trial(trial)
    trial.refresh_from_db()
    assert trial.trial_state == TrialState.FAILED and "out of memory" in trial.trial_note
    [following] = running_trials(sweep)
    assert following.trial_number == 1
    for value in (0.4, 0.3, 0.2):
        finish_trial(running_trials(sweep)[0], value)
    sweep.refresh_from_db()
    assert sweep.status == Sweep.Status.FINISHED and sweep.best_trial.trial_value == 0.4


def test_a_trial_without_the_metric_fails_and_a_sweep_of_failures_fails(tiny_model, preference_snapshot, manager):
    sweep = launch(preference_snapshot, tiny_model, manager, n_trials=1)
    finish_trial(running_trials(sweep)[0], 0.9, metric="perplexity")
    sweep.refresh_from_db()
    assert (sweep.status, sweep.failure_reason) == (Sweep.Status.FAILED, "No trial completed.")
    assert sweep.trials.get().trial_note == "The trial did not report preference_accuracy."


def test_pruning_cancels_a_trial_whose_curve_is_clearly_worse(tiny_model, preference_snapshot, manager):
    sweep = launch(preference_snapshot, tiny_model, manager, pruner="median")
    for value in (0.6, 0.7):
        trial = running_trials(sweep)[0]
        log_losses(trial, {1: 0.9, 2: 0.7, 3: 0.5})
        finish_trial(trial, value)
    trial = running_trials(sweep)[0]
    run = trained_run(trial)
    run.status = JobStatus.RUNNING
    run.save()
    run_record_event(run=run, event={"event": "metrics", "step": 1, "loss": 0.85})  # better than the median: goes on
    assert trial.runs.get(pk=run.pk).cancel_requested is False
    run_record_event(run=run, event={"event": "metrics", "step": 2, "loss": 2.4, "learning_rate": 1e-4})
    run.refresh_from_db()
    trial.refresh_from_db()
    assert run.cancel_requested and trial.trial_state == TrialState.PRUNED
    assert trial.trial_note.startswith("Pruned by the sweep at step 2: loss 0.85")


def test_a_pruned_trial_ends_as_pruned_and_the_next_one_starts(tiny_model, preference_snapshot, manager):
    from training.services.runs import run_mark_cancelled

    sweep = launch(preference_snapshot, tiny_model, manager, pruner="median")
    for value in (0.6, 0.7):
        trial = running_trials(sweep)[0]
        log_losses(trial, {1: 0.9, 2: 0.7})
        finish_trial(trial, value)
    trial = running_trials(sweep)[0]
    run = trained_run(trial)
    run.status = JobStatus.RUNNING
    run.save()
    run_record_event(run=run, event={"event": "metrics", "step": 1, "loss": 3.0})
    run_mark_cancelled(run=run, checkpoint=None, log_tail="")  # the engine stopped
    trial.refresh_from_db()
    assert trial.trial_state == TrialState.PRUNED and trial.status == Round.Status.CANCELLED
    assert trial.failure_reason.startswith("Pruned by the sweep")
    assert [t.trial_number for t in running_trials(sweep)] == [3]


def test_without_a_pruner_no_trial_is_pruned(sweep):
    for value in (0.6, 0.7):
        trial = running_trials(sweep)[0]
        log_losses(trial, {1: 0.9})
        finish_trial(trial, value)
    run = trained_run(running_trials(sweep)[0])
    run.status = JobStatus.RUNNING
    run.save()
    run_record_event(run=run, event={"event": "metrics", "step": 1, "loss": 9.0})
    run.refresh_from_db()
    assert not run.cancel_requested


def test_cancel_stops_the_queued_trials_and_asks_no_more(sweep, manager):
    [trial] = running_trials(sweep)
    cancelled = sweep_cancel(sweep=sweep, actor=manager)
    assert cancelled.status == Sweep.Status.CANCELLED
    trial.refresh_from_db()
    assert trial.status == Round.Status.CANCELLED and trial.trial_state == TrialState.FAILED
    assert sweep.trials.count() == 1
    with pytest.raises(Conflict):
        sweep_cancel(sweep=sweep, actor=manager)


def test_promote_names_the_best_trials_model_and_is_audited(sweep, manager):
    with pytest.raises(Conflict, match="still running"):
        sweep_promote(sweep=sweep, actor=manager)
    for value in (0.5, 0.9, 0.6, 0.7):
        finish_trial(running_trials(sweep)[0], value)
    promoted = sweep_promote(sweep=sweep, actor=manager)
    best = sweep.trials.get(trial_number=1)
    assert promoted.promoted_model == trained_run(best).output_model and promoted.promoted_at is not None
    from auditlog.models import LogEntry

    entry = LogEntry.objects.get(additional_data__action=Action.SWEEP_PROMOTE)
    assert entry.actor == manager and entry.additional_data["trial"] == 1


def test_a_sweep_without_a_completed_trial_has_nothing_to_promote(tiny_model, preference_snapshot, manager):
    sweep = launch(preference_snapshot, tiny_model, manager, n_trials=1)
    fail_trial(running_trials(sweep)[0])
    with pytest.raises(Conflict, match="No trial"):
        sweep_promote(sweep=sweep, actor=manager)


def test_a_next_trial_the_checks_refuse_fails_the_sweep_not_the_trial(sweep, preference_snapshot):
    [trial] = running_trials(sweep)
    preference_snapshot.path.unlink()  # removed from disk while the first trial trained
    finish_trial(trial, 0.7)
    trial.refresh_from_db()
    sweep.refresh_from_db()
    assert trial.trial_state == TrialState.COMPLETE and trial.status == Round.Status.SUCCEEDED
    assert sweep.status == Sweep.Status.FAILED and sweep.trials.count() == 1
    assert sweep.failure_reason.startswith("Trial 1 could not be queued: The snapshot's file")
    assert sweep.best_trial == trial
