"""Tasks judged before the task browser get their agreement, flag and skip counts from the migration."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("labeling", "0007_data_job")]
AFTER = [("labeling", "0008_task_browser")]
SCHEMA = {"questions": [{"id": "preference", "type": "pairwise"}, {"id": "issues", "type": "flags"}]}


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _latest() -> list[tuple[str, str]]:
    executor = MigrationExecutor(connection)
    return [(app, name) for app, name in executor.loader.graph.leaf_nodes() if app == "labeling"]


def test_the_migration_fills_the_summary_of_judged_tasks(make_user):
    manager = make_user("old-manager")
    reviewers = [make_user(f"old-reviewer{i}") for i in range(4)]
    try:
        apps = _migrate(BEFORE)
        project = apps.get_model("labeling", "Project").objects.create(name="P", slug="p", created_by_id=manager.pk)
        campaign = apps.get_model("labeling", "Campaign").objects.create(
            project=project, name="C", slug="c", question_schema=SCHEMA, created_by_id=manager.pk
        )
        task = apps.get_model("labeling", "Task").objects.create(campaign=campaign, prompt="Q", response_count=2)
        untouched = apps.get_model("labeling", "Task").objects.create(campaign=campaign, prompt="R", response_count=2)
        assignments = apps.get_model("labeling", "Assignment").objects
        judgements = apps.get_model("labeling", "Judgement").objects
        now = timezone.now()
        for i, (winner, flags) in enumerate([(1, None), (1, {"1": ["unsafe"]}), (2, None)]):
            assignment = assignments.create(
                task=task, reviewer_id=reviewers[i].pk, state="submitted", shown_order=[1, 2], assigned_at=now,
                lease_expires_at=now,
            )  # fmt: skip
            answers = {"preference": {"winner": winner, "strength": 1}} | ({"issues": flags} if flags else {})
            judgements.create(
                assignment=assignment, task=task, reviewer_id=reviewers[i].pk, answers=answers, shown_order=[1, 2],
                time_spent_ms=1, client_submission_id=f"old-{i}", submitted_at=now,
            )  # fmt: skip
        assignments.create(
            task=task, reviewer_id=reviewers[3].pk, state="skipped", shown_order=[1, 2], assigned_at=now,
            lease_expires_at=now, skip_reason="No.",
        )  # fmt: skip
        type(task).objects.filter(pk=task.pk).update(judgement_count=3)
        apps = _migrate(AFTER)
    finally:
        _migrate(_latest())
    tasks = apps.get_model("labeling", "Task").objects
    migrated = tasks.get(pk=task.pk)
    assert (migrated.agreement, migrated.flag_count, migrated.skip_count) == (pytest.approx(2 / 3), 1, 1)
    fresh = tasks.get(pk=untouched.pk)
    assert (fresh.agreement, fresh.flag_count, fresh.skip_count, fresh.extra_votes) == (None, 0, 0, 0)
