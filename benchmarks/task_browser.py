"""How long the task browser's filtered page takes on a campaign of 100,000 tasks (target <= 200 ms).

``setup`` builds, on the configured database (SQLite under ``VAR_DIR``, or ``DATABASE_URL``), a
pairwise campaign with a flags question: ``--tasks`` tasks (default 100,000) imported through the
import service, ``--judged`` of them (default 80%) judged by ``--overlap`` (default 3) of
``--reviewers`` reviewers each, with some flags, a few skips, varied prompt lengths and a meta
with ``source`` and ``lang``. Judgements and assignments are written in bulk, then each task's
counters and summary (agreement, flags, skips) are filled by the same expressions the judgement
service uses (``labeling.services.tasks.summary_expressions``), as the data migration does; that
step is timed too.

``run`` requests the browser page (``/manage/campaigns/<slug>/tasks/?...``) and the API list
(``/api/campaigns/<id>/tasks/?...``) through Django's test client, signed in as a manager, for
each filter in ``FILTERS``: ``--repeat`` times each (default 15, interleaved over filters, as this
machine's speed drifts), and prints the median and p95 of the server time (request to rendered
response, in process: no network) per filter, then over all of them.

    DEBUG=1 .venv/bin/python benchmarks/task_browser.py setup
    DEBUG=1 .venv/bin/python benchmarks/task_browser.py run
    DEBUG=1 DATABASE_URL=postgres://bench:bench@127.0.0.1:5432/bench .venv/bin/python benchmarks/task_browser.py setup
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Count, F, OuterRef, Subquery  # noqa: E402
from django.db.models.functions import Coalesce  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from labeling.models import Assignment, AssignmentState, Campaign, CampaignStatus, Judgement, Response, Task  # noqa: E402
from labeling.services.campaigns import campaign_create, project_create  # noqa: E402
from labeling.services.imports import tasks_import_file  # noqa: E402
from labeling.services.tasks import summary_expressions  # noqa: E402
from rlhf_platform.roles import Role  # noqa: E402

SLUG = "bench-task-browser"
SCHEMA = {
    "questions": [
        {"id": "preference", "type": "pairwise", "strength_labels": ["better", "much better"]},
        {"id": "issues", "type": "flags"},
    ]
}
TARGET_MS = 200.0
SOURCES = ("forum", "web", "support", "code", "synthetic")
# What a manager looks for, from the plain first page to combined filters and a deep page.
FILTERS = {
    "first page": "",
    "low agreement": "agreement_max=0.7&sort=agreement",
    "many judgements, most first": "judgements_min=3&sort=-judgements",
    "gold only": "gold=yes",
    "flagged": "flagged=yes&sort=-flags",
    "skipped": "skipped=yes",
    "reviewer": "reviewer=bench-reviewer-7",
    "long prompts": "prompt_min=300&sort=-prompt_length",
    "meta source=code": "meta=source%3Dcode",
    "text search": "q=photosynthesis",
    "combined": "gold=no&agreement_max=0.7&meta=source%3Dweb&judgements_min=3&sort=-agreement",
    "page 1000": "page=1000",
}
WORDS = ["the", "a", "model", "answer", "question", "explain", "why", "how", "data", "light", "energy"]


def _prompt(i: int, rng: random.Random) -> str:
    topic = "photosynthesis" if i % 97 == 0 else rng.choice(WORDS)
    return f"Question {i} about {topic}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 120)))


def _write_file(path: Path, tasks: int, rng: random.Random) -> None:
    import json

    with path.open("w") as out:
        for i in range(tasks):
            row = {
                "id": f"b{i}",
                "prompt": _prompt(i, rng),
                "responses": [f"Answer A to {i}.", f"Answer B to {i}, **longer**."],
                "meta": {"source": SOURCES[i % len(SOURCES)], "lang": "en" if i % 3 else "de"},
            }
            if i % 200 == 0:
                row["gold"] = {"preferred": 0}
            out.write(json.dumps(row) + "\n")


def command_setup(args: argparse.Namespace) -> int:
    call_command("migrate", verbosity=0)
    existing = Campaign.objects.filter(slug=SLUG).first()
    if existing is not None:
        print(f"The campaign {SLUG} exists already: filling its counters again (delete it to build anew).")
        _fill_counters(existing)
        return 0
    rng = random.Random(17)  # noqa: S311 (reproducible fixtures, not secrets)
    users = get_user_model()
    manager, _ = users.objects.get_or_create(username="bench-manager")
    manager.groups.add(Group.objects.get_or_create(name=Role.MANAGER)[0])
    reviewers = []
    for i in range(args.reviewers):
        user, _ = users.objects.get_or_create(username=f"bench-reviewer-{i}")
        reviewers.append(user)
    project = project_create(name="Task browser benchmark", created_by=manager)
    campaign = campaign_create(
        project=project, created_by=manager, name="Task browser benchmark", slug=SLUG, question_schema=SCHEMA,
        overlap=args.overlap,
    )  # fmt: skip
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.ACTIVE)
    path = Path(tempfile.mkdtemp()) / "tasks.jsonl"
    _write_file(path, args.tasks, rng)
    started = time.perf_counter()
    tasks_import_file(campaign=campaign, path=path)
    path.unlink()
    path.parent.rmdir()
    print(f"imported {args.tasks:,} tasks in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    responses: dict[int, list[int]] = {}
    for task_id, response_id in Response.objects.filter(task__campaign=campaign).values_list("task_id", "pk"):
        responses.setdefault(task_id, []).append(response_id)
    regular = list(Task.objects.filter(campaign=campaign, is_gold=False).values_list("pk", flat=True))
    judged = rng.sample(regular, int(len(regular) * args.judged))
    now = timezone.now()
    written = 0
    for start in range(0, len(judged), 2000):
        assignments, judgements = [], []
        for task_id in judged[start : start + 2000]:
            ids = sorted(responses[task_id])
            lean = rng.random()  # how much this task's reviewers agree
            who = rng.sample(reviewers, args.overlap + 1)
            for n, reviewer in enumerate(who):
                at = now - dt.timedelta(minutes=rng.randint(1, 60 * 24 * 14))
                shown = ids if rng.random() < 0.5 else ids[::-1]
                if n == args.overlap:  # one more reviewer skipped some tasks
                    if rng.random() < 0.05:
                        assignments.append(
                            Assignment(task_id=task_id, reviewer=reviewer, state=AssignmentState.SKIPPED,
                                       shown_order=shown, assigned_at=at, lease_expires_at=at, finished_at=at,
                                       skip_reason="Not my field.")
                        )  # fmt: skip
                    continue
                assignment = Assignment(
                    task_id=task_id, reviewer=reviewer, state=AssignmentState.SUBMITTED, shown_order=shown,
                    assigned_at=at, lease_expires_at=at, finished_at=at,
                )  # fmt: skip
                assignments.append(assignment)
                answers = {"preference": {"winner": ids[0] if rng.random() < lean else ids[1], "strength": 1}}
                if rng.random() < 0.02:
                    answers["issues"] = {str(ids[1]): ["unsafe"]}
                judgements.append((assignment, answers, at, reviewer))
        with transaction.atomic():
            Assignment.objects.bulk_create(assignments, batch_size=500)
            Judgement.objects.bulk_create(
                [
                    Judgement(assignment=a, task_id=a.task_id, reviewer=reviewer, answers=answers,
                              shown_order=a.shown_order, time_spent_ms=rng.randint(2000, 90000),
                              client_submission_id=f"bench-{a.pk}", submitted_at=at)
                    for a, answers, at, reviewer in judgements
                ],
                batch_size=500,
            )  # fmt: skip
        written += len(judgements)
    print(f"wrote {written:,} judgements in {time.perf_counter() - started:.1f} s")

    _fill_counters(campaign)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return 0


def _fill_counters(campaign: Campaign) -> None:
    """The tasks' counters from the rows written, then their summaries as the migration fills them."""
    started = time.perf_counter()
    live = Judgement.objects.filter(task=OuterRef("pk")).order_by().values("task").annotate(n=Count("pk")).values("n")
    task_ids = list(Task.objects.filter(campaign=campaign).order_by("pk").values_list("pk", flat=True))
    # In slices, each committed: one UPDATE of every task spills SQLite's page cache and crawls.
    for start in range(0, len(task_ids), 5000):
        with transaction.atomic():
            tasks = Task.objects.filter(pk__in=task_ids[start : start + 5000])
            tasks.update(judgement_count=Coalesce(Subquery(live), 0))
            tasks.update(slots_taken=F("judgement_count"))
            tasks.update(**summary_expressions(Judgement, SCHEMA))
    skipped = (
        Assignment.objects.filter(task__campaign=campaign, state=AssignmentState.SKIPPED)
        .values_list("task")
        .annotate(n=Count("pk"))
    )
    by_count: dict[int, list[int]] = {}
    for task_id, n in skipped:
        by_count.setdefault(n, []).append(task_id)
    for n, ids in by_count.items():
        Task.objects.filter(pk__in=ids).update(skip_count=n)
    print(f"filled the counters and summaries of {len(task_ids):,} tasks in {time.perf_counter() - started:.1f} s")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def command_run(args: argparse.Namespace) -> int:
    campaign = Campaign.objects.get(slug=SLUG)
    manager = get_user_model().objects.get(username="bench-manager")
    client = Client(HTTP_HOST="localhost")  # a host the settings allow
    client.force_login(manager)
    page = f"/manage/campaigns/{SLUG}/tasks/?"
    api = f"/api/campaigns/{campaign.pk}/tasks/?"
    times: dict[tuple[str, str], list[float]] = {}
    counts: dict[str, int] = {}
    for repeat in range(args.repeat + 1):  # the first pass warms caches and is not counted
        for name, query in FILTERS.items():
            for kind, url in (("page", page), ("api", api)):
                started = time.perf_counter()
                response = client.get(url + query)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"{kind} {name}: status {response.status_code}")
                if kind == "api":
                    counts[name] = response.json()["count"]
                if repeat:
                    times.setdefault((name, kind), []).append(elapsed)
    n_tasks = Task.objects.filter(campaign=campaign).count()
    n_judgements = Judgement.objects.filter(task__campaign=campaign).count()
    print(f"{connection.vendor}, {n_tasks:,} tasks, {n_judgements:,} judgements, {args.repeat} runs each")
    print(f"{'filter':<30} {'matches':>8} {'page p50':>9} {'page p95':>9} {'api p50':>8} {'api p95':>8}  (ms)")
    for name in FILTERS:
        page_ms, api_ms = times[(name, "page")], times[(name, "api")]
        print(
            f"{name:<30} {counts[name]:>8,} {statistics.median(page_ms):>9.1f} {_percentile(page_ms, 0.95):>9.1f} "
            f"{statistics.median(api_ms):>8.1f} {_percentile(api_ms, 0.95):>8.1f}"
        )
    for kind in ("page", "api"):
        every = [t for (name, k), values in times.items() if k == kind for t in values]
        median, p95 = statistics.median(every), _percentile(every, 0.95)
        verdict = "meets" if p95 <= TARGET_MS else "misses"
        print(
            f"all filters, {kind}: median {median:.1f} ms, p95 {p95:.1f} ms ({verdict} the {TARGET_MS:.0f} ms target)"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser("setup")
    setup.add_argument("--tasks", type=int, default=100_000)
    setup.add_argument("--judged", type=float, default=0.8, help="Share of regular tasks judged.")
    setup.add_argument("--overlap", type=int, default=3)
    setup.add_argument("--reviewers", type=int, default=40)
    run = commands.add_parser("run")
    run.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    return command_setup(args) if args.command == "setup" else command_run(args)


if __name__ == "__main__":
    sys.exit(main())
