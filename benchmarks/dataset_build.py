"""A dataset build from 1,000,000 judgements stored in PostgreSQL to a snapshot on disk, end to end.

What it measures
    ``benchmarks/aggregation.py`` starts from rows in memory; this one starts from the database, as
    a build job does. ``setup`` loads a pairwise campaign into PostgreSQL with COPY: ``--tasks``
    tasks (default 250,000) of 2 responses, ``--overlap`` (default 4) judgements each from
    ``--reviewers`` reviewers (default 500; 50 of them answer at random), with their assignments:
    1,000,000 judgements at the defaults. ``run`` then builds a Bradley-Terry preference snapshot
    (10% of prompts held out) of that campaign twice:

    1. through ``dataset_build`` itself, timing its phases as it announces them (``on_phase``):
       ``read`` (``selectors.load_build_inputs``: the database read into columns), ``aggregate``
       (``build_rows``: pairs, reliability, Bradley-Terry, filters, one dict per pair, and the
       content hash) and ``write`` (the JSONL file, the row, the audit entry), each with its wall and
       CPU time and the peak RSS during it (the kernel's high-water mark, reset per phase);
    2. as a build job, the way the worker runs it (``dataset_build_job_create`` then
       ``data_job_run_next``): queued to succeeded, the figure for the target (<= 20 s).

    The snapshot of run 1 is deleted before run 2, which would otherwise find it by its hash.

Run (PostgreSQL; see benchmarks/README.md for a role and a database)
    DEBUG=1 DATABASE_URL=postgres://bench:bench@127.0.0.1:5432/bench .venv/bin/python benchmarks/dataset_build.py setup
    DEBUG=1 DATABASE_URL=... .venv/bin/python benchmarks/dataset_build.py run
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import json
import os
import secrets
import sys
import time
from pathlib import Path

import numpy as np
from aggregation import peak_bytes, reset_peak, rss_bytes  # benchmarks/aggregation.py, beside this script

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA = {"questions": [{"id": "preference", "type": "pairwise", "allow_both_bad": True}]}
TARGET_S = 20.0


def _django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("Set DATABASE_URL=postgres://...: this benchmark reads from PostgreSQL.")


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def _next_id(cursor, table: str) -> int:
    cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")  # noqa: S608 - fixed table names
    return cursor.fetchone()[0]


def _copy(cursor, table: str, columns: tuple[str, ...], rows) -> int:
    count = 0
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"  # noqa: S608
    )
    return count


def command_setup(args: argparse.Namespace) -> int:
    """Users, a campaign, then tasks, responses, assignments and judgements by COPY; writes the config."""
    _django_setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection, transaction

    from labeling.models import CampaignStatus
    from labeling.services.campaigns import campaign_create, project_create
    from rlhf_platform.roles import Role

    tag = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    user_model = get_user_model()
    with transaction.atomic():
        manager = user_model.objects.create_user(username=f"build-manager-{tag}", password=None)
        manager.groups.add(Group.objects.get(name=Role.MANAGER))
        reviewer_group = Group.objects.get(name=Role.REVIEWER)
        reviewers = user_model.objects.bulk_create(
            [user_model(username=f"build-rev-{tag}-{i:03d}") for i in range(args.reviewers)]
        )
        reviewer_group.user_set.add(*reviewers)
    project = project_create(name=f"Build benchmark {tag}", created_by=manager)
    campaign = campaign_create(
        project=project, created_by=manager, name=f"Build benchmark {tag}", question_schema=SCHEMA, overlap=args.overlap
    )
    reviewer_ids = np.array([user.pk for user in reviewers])
    random_reviewers = set(reviewer_ids[: args.reviewers // 10].tolist())
    now = dt.datetime.now(dt.UTC)
    n_tasks, overlap = args.tasks, args.overlap
    with transaction.atomic(), connection.cursor() as wrapper:
        cursor = wrapper.cursor  # psycopg's own cursor, for COPY
        task0, response0 = _next_id(cursor, "labeling_task"), _next_id(cursor, "labeling_response")
        assignment0, judgement0 = _next_id(cursor, "labeling_assignment"), _next_id(cursor, "labeling_judgement")
        filler = "x" * args.response_chars
        _copy(
            cursor,
            "labeling_task",
            (
                "id",
                "campaign_id",
                "external_id",
                "prompt",
                "meta",
                "is_gold",
                "response_count",
                "slots_taken",
                "judgement_count",
                "created_at",
            ),
            (
                (
                    task0 + i,
                    campaign.pk,
                    f"t{i}",
                    json.dumps(f"Prompt {i}: which answer is better?"),
                    "{}",
                    False,
                    2,
                    overlap,
                    overlap,
                    now,
                )
                for i in range(n_tasks)
            ),
        )
        _copy(
            cursor,
            "labeling_response",
            ("id", "task_id", "position", "text", "model_name", "meta", "html", "rendered_with"),
            (
                (
                    response0 + 2 * i + side,
                    task0 + i,
                    side,
                    f"Answer {side} to {i}. {filler}",
                    f"model-{side}",
                    "{}",
                    "",
                    0,
                )
                for i in range(n_tasks)
                for side in (0, 1)
            ),
        )
        # Each task's reviewers: overlap distinct ones, drawn without replacement per task.
        offsets = rng.integers(0, len(reviewer_ids), size=n_tasks)
        quality = rng.normal(1.0, 0.5, size=n_tasks)  # > 0: response 0 is truly better
        choices = rng.random(size=(n_tasks, overlap))
        shown_left = rng.random(size=(n_tasks, overlap)) < 0.5

        def votes():
            for i in range(n_tasks):
                for k in range(overlap):
                    reviewer = int(reviewer_ids[(offsets[i] + k * 7) % len(reviewer_ids)])
                    r0, r1 = response0 + 2 * i, response0 + 2 * i + 1
                    if reviewer in random_reviewers:
                        winner = r0 if choices[i, k] < 0.5 else r1
                    else:
                        winner = r0 if choices[i, k] < 1 / (1 + np.exp(-2 * quality[i])) else r1
                    shown = [r0, r1] if shown_left[i, k] else [r1, r0]
                    yield i, k, reviewer, winner, shown

        submitted = now.isoformat()
        assignments = _copy(
            cursor,
            "labeling_assignment",
            (
                "id",
                "task_id",
                "reviewer_id",
                "state",
                "shown_order",
                "assigned_at",
                "lease_expires_at",
                "finished_at",
                "skip_reason",
            ),
            (
                (
                    assignment0 + i * overlap + k,
                    task0 + i,
                    reviewer,
                    "submitted",
                    json.dumps(shown),
                    submitted,
                    submitted,
                    submitted,
                    "",
                )
                for i, k, reviewer, _, shown in votes()
            ),
        )
        judgements = _copy(
            cursor,
            "labeling_judgement",
            (
                "id",
                "assignment_id",
                "task_id",
                "reviewer_id",
                "answers",
                "shown_order",
                "time_spent_ms",
                "client_submission_id",
                "submitted_at",
            ),
            (
                (
                    judgement0 + i * overlap + k,
                    assignment0 + i * overlap + k,
                    task0 + i,
                    reviewer,
                    json.dumps({"preference": {"winner": winner, "strength": 1 + (i + k) % 3}}),
                    json.dumps(shown),
                    4000,
                    f"bench-{i}-{k}",
                    submitted,
                )
                for i, k, reviewer, winner, shown in votes()
            ),
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE labeling_task, labeling_response, labeling_assignment, labeling_judgement")
    Campaign = type(campaign)
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.ACTIVE)
    config = {"campaign_id": campaign.pk, "manager_id": manager.pk, "judgements": judgements}
    Path(args.config).parent.mkdir(parents=True, exist_ok=True)
    Path(args.config).write_text(json.dumps(config, indent=2))
    print(
        f"campaign {campaign.pk}: {n_tasks:,} tasks, {assignments:,} assignments, {judgements:,} judgements "
        f"in {time.perf_counter() - started:.1f} s; wrote {args.config}"
    )
    return 0


def command_run(args: argparse.Namespace) -> int:
    _django_setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from labeling.datasets import BuildParams
    from labeling.models import Campaign, DataJob, Judgement, PreferenceDataset
    from labeling.services.data_jobs import data_job_run_next, dataset_build_job_create
    from labeling.services.datasets import dataset_build

    config = json.loads(Path(args.config).read_text())
    campaign = Campaign.objects.get(pk=config["campaign_id"])
    manager = get_user_model().objects.get(pk=config["manager_id"])
    params = BuildParams(method=args.method, test_fraction=0.1)
    judgements = Judgement.objects.filter(task__campaign=campaign).count()
    print(f"load average {os.getloadavg()[0]:.2f}; campaign {campaign.pk} with {judgements:,} judgements")

    def forget(dataset: PreferenceDataset) -> None:
        dataset.path.unlink(missing_ok=True)
        dataset.campaigns.clear()
        dataset.delete()

    for existing in PreferenceDataset.objects.filter(campaigns=campaign):
        forget(existing)

    # 1. The phases, from dataset_build's own announcements.
    marks: list[tuple[str, float, float, int]] = []

    def on_phase(name: str) -> None:
        marks.append((name, time.perf_counter(), time.process_time(), peak_bytes()))
        reset_peak()

    gc.collect()
    connection.close()  # the read starts with a connection of its own, as in a fresh job
    rss_start = rss_bytes()
    reset_peak()
    started, cpu_started = time.perf_counter(), time.process_time()
    dataset, _ = dataset_build(campaigns=[campaign], params=params, created_by=manager, on_phase=on_phase)
    marks.append(("end", time.perf_counter(), time.process_time(), peak_bytes()))
    total_s = marks[-1][1] - started
    print(f"\ndataset_build, phase by phase (RSS at start {_mb(rss_start)}):")
    print(f"  {'phase':<10}{'wall s':>9}{'CPU s':>9}{'peak RSS':>12}")
    for (name, at, cpu, _), (_, next_at, next_cpu, next_peak) in itertools.pairwise(marks):
        print(f"  {name:<10}{next_at - at:>9.2f}{next_cpu - cpu:>9.2f}{_mb(next_peak):>12}")
    before = marks[0][1] - started
    print(f"  {'(checks)':<10}{before:>9.2f}{marks[0][2] - cpu_started:>9.2f}")
    print(f"  {'total':<10}{total_s:>9.2f}{marks[-1][2] - cpu_started:>9.2f}")
    print(f"  rows {dataset.counts.get('pairs'):,}, file {dataset.path.stat().st_size / 2**20:.0f} MB")
    forget(dataset)

    # 2. End to end as the worker runs it.
    gc.collect()
    reset_peak()
    queued_at = time.perf_counter()
    job = dataset_build_job_create(campaigns=[campaign], params=params, created_by=manager)
    ran = data_job_run_next(worker="benchmark", heartbeat_s=5)
    job_s = time.perf_counter() - queued_at
    job.refresh_from_db()
    if ran is None or ran.pk != job.pk:
        raise SystemExit("another data job was queued: run this without a worker taking data jobs")
    if job.status != DataJob.Status.SUCCEEDED:
        raise SystemExit(f"the build job failed: {job.error}")
    print(f"\nbuild job, queued to succeeded: {job_s:.2f} s, peak RSS {_mb(peak_bytes())}")
    verdict = "ok" if job_s <= TARGET_S else "MISSED"
    print(f"target: a build from {judgements:,} judgements in PostgreSQL to a snapshot <= {TARGET_S:.0f} s: {verdict}")
    if not args.keep:
        forget(job.dataset)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser("setup", help="load the judgements into PostgreSQL (COPY)")
    setup.add_argument("--tasks", type=int, default=250_000)
    setup.add_argument("--overlap", type=int, default=4, help="judgements per task")
    setup.add_argument("--reviewers", type=int, default=500)
    setup.add_argument("--response-chars", type=int, default=100)
    setup.add_argument("--seed", type=int, default=0)
    setup.set_defaults(handler=command_setup)
    run = commands.add_parser("run", help="time the build's phases, then the build as a job")
    run.add_argument("--method", default="bradley_terry", choices=["majority", "weighted", "bradley_terry"])
    run.add_argument("--keep", action="store_true", help="keep the job's snapshot")
    run.set_defaults(handler=command_run)
    for sub in (setup, run):
        sub.add_argument("--config", default=str(REPO_ROOT / "var" / "dataset_build.json"))
    return parser


if __name__ == "__main__":
    arguments = build_parser().parse_args()
    sys.exit(arguments.handler(arguments))
