"""The reviewer loop while long work runs in the worker: p99 at C = 32 idle, during an import, during a build.

What it measures
    The same reviewer loop as ``labeling_load.py`` (combined cycles: a submit that carries the next
    task), at ``--concurrency`` (default 32), in three kinds of slices taken in turn, ``--rounds``
    times (default 3), so that the machine's drift weighs on all of them alike:

    - ``idle``: nothing else runs;
    - ``import``: a ``--rows``-row file (default 100,000) was uploaded through the API into a new draft
      campaign, and the worker's import job is running (the slice starts once the job says
      running, and its end is checked against the job's end);
    - ``build``: a dataset build of ``--build-campaign`` (e.g. the 1,000,000 judgements of
      ``dataset_build.py setup``) was queued through the API and is running.

    It prints each kind's p50/p95/p99 of ``submit`` and of the whole cycle, the cycles/s, the share
    of each measured slice during which the job was still running, how long each job took, and the
    ratio of the p99s to the idle ones (the target: <= 2x), with the load average.

Run (PostgreSQL; the server and ``manage.py worker --queue data`` share VAR_DIR)
    1. ``labeling_load.py setup`` (reviewers, tokens, an active campaign), once.
    2. ``DEBUG=1 DATABASE_URL=... .venv/bin/python benchmarks/long_work_load.py setup`` creates a
       manager token and a project and writes the import file (``var/long_work_import.jsonl``).
    3. The server as in benchmarks/README.md (uvicorn, 2 workers, DEBUG off), and beside it
       ``.venv/bin/python manage.py worker --queue data`` with the same environment.
    4. ``.venv/bin/python benchmarks/long_work_load.py run --url http://127.0.0.1:8123 [--build-campaign ID]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from labeling_load import (  # benchmarks/labeling_load.py, beside this script
    DEFAULT_CONFIG,
    REPO_ROOT,
    Budget,
    Phase,
    Target,
    _check_url,
    _django_setup,
    _fmt_ms,
    _reviewer_loop,
    _run_phase,
)

CONFIG = REPO_ROOT / "var" / "long_work.json"
TARGET_RATIO = 2.0
SCHEMA = {"questions": [{"id": "preference", "type": "pairwise"}]}


def task_row(i: int) -> dict[str, Any]:
    return {
        "id": f"bg-{i}",
        "prompt": f"Question number {i}: explain the idea behind item {i} in two sentences.",
        "responses": [
            {"text": f"A careful answer to question {i}, with a short example and a caveat.", "model": "m-a"},
            {"text": f"A shorter answer to question {i}.", "model": "m-b"},
        ],
        "meta": {"source": "benchmark"},
    }


def command_setup(args: argparse.Namespace) -> int:
    _django_setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from labeling.services.campaigns import project_create
    from rlhf_platform.roles import Role

    tag = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    manager = get_user_model().objects.create_user(username=f"bg-manager-{tag}", password=None)
    manager.groups.add(Group.objects.get(name=Role.MANAGER))
    project = project_create(name=f"Long work {tag}", created_by=manager)
    path = Path(args.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for i in range(args.rows):
            out.write(json.dumps(task_row(i)) + "\n")
    config = {"manager_token": Token.objects.create(user=manager).key, "project_id": project.pk, "file": str(path)}
    descriptor = os.open(args.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(config, handle, indent=2)
    print(f"manager {manager.username}, project {project.pk}, {args.rows:,} rows in {path}; wrote {args.config}")
    return 0


def _expect(status: int, wanted: int, body: Any) -> None:
    if status != wanted:
        raise SystemExit(f"the server answered {status}, not {wanted}: {body}")


async def _api(session: Any, method: str, url: str, token: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.request(method, url, headers={"Authorization": f"Token {token}"}, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def _start_import(session: Any, base_url: str, config: dict[str, Any], round_number: int) -> str:
    import aiohttp

    token = config["manager_token"]
    status, campaign = await _api(
        session,
        "POST",
        f"{base_url}/api/campaigns/",
        token,
        json={
            "project": config["project_id"],
            "name": f"Long work import {time.time():.0f}-{round_number}",
            "question_schema": SCHEMA,
        },
    )
    _expect(status, 201, campaign)
    form = aiohttp.FormData()
    with open(config["file"], "rb") as handle:
        form.add_field("file", handle, filename="tasks.jsonl", content_type="application/octet-stream")
        status, job = await _api(
            session, "POST", f"{base_url}/api/campaigns/{campaign['id']}/import/", token, data=form
        )
    _expect(status, 202, job)
    return f"{base_url}{job['url']}"


async def _start_build(session: Any, base_url: str, config: dict[str, Any], campaign_id: int, seed: int) -> str:
    # A new seed each time: the same parameters would find the snapshot already built.
    body = {"campaigns": [campaign_id], "method": "bradley_terry", "test_fraction": 0.1, "seed": seed}
    status, job = await _api(session, "POST", f"{base_url}/api/datasets/", config["manager_token"], json=body)
    _expect(status, 202, job)
    return f"{base_url}{job['url']}"


async def _job(session: Any, url: str, token: str) -> dict[str, Any]:
    status, job = await _api(session, "GET", url, token)
    _expect(status, 200, job)
    return job


async def _wait_status(session: Any, url: str, token: str, wanted: set[str], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = await _job(session, url, token)
        if job["status"] in wanted or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.1)


async def _run(args: argparse.Namespace) -> int:
    import aiohttp

    load_config = json.loads(Path(args.load_config).read_text())
    config = json.loads(Path(args.config).read_text())
    target = Target(_check_url(args.url), int(load_config["campaign_id"]), load_config["tokens"])
    token = config["manager_token"]
    concurrency = args.concurrency

    async def cycles(session: Any, index: int, phase: Phase, deadline: float, budget: Budget) -> None:
        await _reviewer_loop(session, target, target.tokens[index], phase, deadline, budget, combined=True)

    kinds = ["idle", "import"] + (["build"] if args.build_campaign else [])
    slices: dict[str, list[Phase]] = {kind: [] for kind in kinds}
    running_share: dict[str, list[float]] = {kind: [] for kind in kinds if kind != "idle"}
    job_seconds: dict[str, list[float]] = {kind: [] for kind in kinds if kind != "idle"}
    print(
        f"C = {concurrency}, {args.seconds:g} s per slice after {args.warmup:g} s of warm-up, {args.rounds} rounds; "
        f"load average at start {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)"
    )
    common = {"seconds": args.seconds, "warmup": args.warmup, "max_iterations": 10**6, "watch": {}}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        for round_number in range(1, args.rounds + 1):
            for kind in kinds:
                if kind == "idle":
                    slices[kind].append(await _run_phase(kind, concurrency, cycles, **common))
                    p99 = _fmt_ms(slices[kind][-1].percentiles("submit")[2])
                    print(f"  round {round_number} {kind:<6} p99 submit {p99} ms")
                    continue
                queued_at = time.monotonic()
                if kind == "import":
                    url = await _start_import(session, target.base_url, config, round_number)
                else:
                    url = await _start_build(session, target.base_url, config, args.build_campaign, 1000 + round_number)
                job = await _wait_status(session, url, token, {"running", "succeeded", "failed"}, 120)
                running_from = time.monotonic()
                if job["status"] != "running":
                    raise SystemExit(f"the {kind} job never ran: {job}")
                phase = await _run_phase(kind, concurrency, cycles, **common)
                measured_until = time.monotonic()
                job = await _wait_status(session, url, token, {"succeeded", "failed"}, 900)
                ended = time.monotonic()
                if job["status"] != "succeeded":
                    raise SystemExit(f"the {kind} job failed: {job['detail']}")
                # The share of the measured slice (after its warm-up) during which the job still ran.
                measured_from = measured_until - phase.elapsed_s
                overlap = max(0.0, min(ended, measured_until) - max(running_from, measured_from))
                running_share[kind].append(overlap / phase.elapsed_s if phase.elapsed_s else 0.0)
                job_seconds[kind].append(ended - queued_at)
                slices[kind].append(phase)
                print(
                    f"  round {round_number} {kind:<6} p99 submit {_fmt_ms(phase.percentiles('submit')[2])} ms; "
                    f"job {ended - queued_at:.1f} s queued to done; ran through "
                    f"{100 * running_share[kind][-1]:.0f}% of the slice; load {os.getloadavg()[0]:.2f}"
                )
    merged = {kind: Phase.merged(parts) for kind, parts in slices.items()}
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    header = f"{'slices':<8}{'cycles/s':>10}{'submit p50/p95/p99':>24}{'cycle p50/p95/p99':>24}"
    print(header + f"{'job running':>13}{'job s':>8}")
    for kind, phase in merged.items():
        submit = "/".join(_fmt_ms(v) for v in phase.percentiles("submit"))
        cycle = "/".join(_fmt_ms(v) for v in phase.percentiles("cycle"))
        share = running_share.get(kind)
        running = f"{100 * sum(share) / len(share):.0f}%" if share else "-"
        seconds = job_seconds.get(kind)
        job_s = f"{sum(seconds) / len(seconds):.1f}" if seconds else "-"
        errors = sum(phase.errors.values())
        print(
            f"{kind:<8}{phase.rate:>10.1f}{submit:>24}{cycle:>24}{running:>13}{job_s:>8}"
            + (f"  errors {errors}" if errors else "")
        )
    idle_p99 = merged["idle"].percentiles("submit")[2]
    for kind in kinds[1:]:
        ratio = merged[kind].percentiles("submit")[2] / idle_p99
        verdict = "ok" if ratio <= TARGET_RATIO else "MISSED"
        print(f"target: submit p99 during the {kind} <= {TARGET_RATIO:g}x idle: {ratio:.2f}x {verdict}")
    return 0


def command_run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser("setup", help="a manager token, a project, and the import file")
    setup.add_argument("--rows", type=int, default=100_000)
    setup.add_argument("--file", default=str(REPO_ROOT / "var" / "long_work_import.jsonl"))
    setup.set_defaults(handler=command_setup)
    run = commands.add_parser("run", help="idle, import and build slices in turn")
    run.add_argument("--url", default="http://127.0.0.1:8000")
    run.add_argument("--load-config", default=str(DEFAULT_CONFIG), help="labeling_load.py setup's file")
    run.add_argument("--concurrency", type=int, default=32)
    run.add_argument("--seconds", type=float, default=10.0, help="measured seconds per slice")
    run.add_argument("--warmup", type=float, default=2.0)
    run.add_argument("--rounds", type=int, default=3)
    run.add_argument("--build-campaign", type=int, help="a campaign to build a dataset of (e.g. 1M judgements)")
    run.set_defaults(handler=command_run)
    for sub in (setup, run):
        sub.add_argument("--config", default=str(CONFIG))
    return parser


if __name__ == "__main__":
    arguments = build_parser().parse_args()
    sys.exit(arguments.handler(arguments))
