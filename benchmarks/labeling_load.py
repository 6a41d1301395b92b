"""Labeling throughput under load: simulated reviewers loop next-task -> submit over HTTP.

What it measures
    Against a server that is already running (this script starts nothing) on PostgreSQL,
    C concurrent simulated reviewers, each a separate user with its own API token, loop
    ``POST /api/campaigns/<id>/next/`` -> ``POST /api/assignments/<id>/submit/`` for a
    bounded time, in two modes: ``pair``, those two requests per cycle, and ``combined``, where
    the submit carries ``claim_next`` and its answer holds the next task, as the reviewer
    workspace does (one request per cycle). For each C (default 1, 8, 32) and mode it prints
    cycles/s, p50/p95/p99 latency of each request type and errors by status; then, under the
    same server, the same C and
    for the same time, the rate of two trivial views, ``GET /api/me/`` (token auth and one
    group query: the same auth cost as a cycle's requests, so the fair floor) and
    ``GET /healthz`` (no auth, ``SELECT 1``); and what a cycle costs in trivial requests
    (trivial rate / cycle rate). It ends with a summary table and the issue's target
    check for each mode (at C = 32: >= 200 cycles/s, p99 <= 250 ms, a cycle <= 3 trivial requests).
    The load generator runs on the same machine; the CPU it uses is printed beside the
    machine's and, with ``--watch NAME=PID``, beside that of the server's and PostgreSQL's
    process trees (CPU-ms per operation too). The C connections open one by one during
    the warm-up, as reviewers arriving over time would open them (see ``_run_phase``).

How to run (see benchmarks/README.md for the full recipe)
    1. Set up users, tokens and a campaign, with the project's settings (PostgreSQL):

        DEBUG=1 DATABASE_URL=postgres://bench:bench@127.0.0.1:5432/bench \\
            .venv/bin/python benchmarks/labeling_load.py setup --reviewers 64 --tasks 20000

       It writes var/labeling_load.json (campaign id and tokens; mode 0600).
    2. Start the server the production way (ASGI workers, DEBUG off), e.g.:

        DEBUG=0 SECRET_KEY=<long random> ALLOWED_HOSTS=127.0.0.1,localhost SECURE_SSL_REDIRECT=0 \\
        SESSION_COOKIE_SECURE=0 CSRF_COOKIE_SECURE=0 DATABASE_URL=postgres://bench:bench@127.0.0.1:5432/bench \\
        LOG_LEVEL=WARNING .venv/bin/uvicorn rlhf_platform.asgi:application --host 127.0.0.1 --port 8123 \\
            --workers 2 --no-access-log
    3. Run the load (only loopback addresses are accepted):

        .venv/bin/python benchmarks/labeling_load.py run --url http://127.0.0.1:8123 \\
            --seconds 15 --concurrency 1,8,32

    ``profile`` (Django side, in-process, same settings as ``setup``) counts the SQL
    queries of each request type and prints where the time goes (cProfile), plus what
    opening a database connection costs.

The ``run`` part needs only aiohttp (and uses uvloop when installed); ``setup`` and
``profile`` import Django.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "var" / "labeling_load.json"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
PAIRWISE_SCHEMA = {"questions": [{"id": "preference", "type": "pairwise"}]}
REQUEST_TIMEOUT_S = 30.0
ERROR_BACKOFF_S = 0.05
TARGET_CONCURRENCY = 32
TARGET_CYCLES_PER_S = 200.0
TARGET_P99_MS = 250.0
TARGET_COST = 3.0
# Cycle phases: "pair" is next/ then submit/ (two requests); "combined" submits with
# claim_next, which also holds the next task (one request per cycle after the first).
CYCLE_MODES = {"pair": False, "combined": True}

# --- setup (Django side) ---------------------------------------------------------------------

GUIDELINES = """## How to judge

Pick the response that answers the question **more helpfully and more honestly**.

- Prefer correct over confident.
- Prefer short over padded, when both are complete.
"""


def _response_text(task: int, side: str) -> str:
    """A Markdown answer of about 900 characters; every fourth one carries a code block."""
    text = (
        f"Here is answer **{side}** to question {task}.\n\n"
        "1. Read the input carefully and note the constraints.\n"
        "2. Choose a data structure that makes the common operation cheap.\n"
        "3. Check the edge cases: empty input, one element, duplicates.\n\n"
        "In short, a `dict` keyed by the value gives constant-time look-ups, and sorting once "
        "up front costs `O(n log n)`, which dominates. " * 2
    )
    if task % 4 == 0:
        text += (
            "\n```python\ndef dedupe(items):\n    seen = set()\n    out = []\n    for item in items:\n"
            "        if item not in seen:\n            seen.add(item)\n            out.append(item)\n"
            "    return out\n```\n"
        )
    return text


def _task_rows(count: int) -> bytes:
    lines = []
    for i in range(count):
        row = {
            "id": f"load-{i}",
            "prompt": f"How would you remove duplicates from a list while keeping order? (variant {i})",
            "responses": [
                {"text": _response_text(i, "A"), "model": "a"},
                {"text": _response_text(i, "B"), "model": "b"},
            ],
        }
        lines.append(json.dumps(row))
    return ("\n".join(lines) + "\n").encode()


def _django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()


def _require_postgresql(allow_other: bool) -> None:
    from django.db import connection

    if connection.vendor != "postgresql" and not allow_other:
        raise SystemExit(
            f"The database is {connection.vendor}; this benchmark is meant for PostgreSQL. "
            "Set DATABASE_URL=postgres://... (or pass --allow-sqlite)."
        )


def command_setup(args: argparse.Namespace) -> int:
    """Create reviewers, tokens, a project and an active pairwise campaign; write the config."""
    _django_setup()
    _require_postgresql(args.allow_sqlite)
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import transaction

    from labeling.models import CampaignStatus
    from labeling.services.campaigns import (
        campaign_create,
        campaign_set_reviewers,
        campaign_set_status,
        project_create,
    )
    from labeling.services.imports import tasks_import
    from labeling.services.prerender import responses_render_pending
    from rlhf_platform.roles import Role
    from rlhf_platform.services import token_create

    tag = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    started = time.perf_counter()
    user_model = get_user_model()
    with transaction.atomic():
        # Like rlhf_platform.services.user_create_with_role, but with an unusable password: these
        # users only ever authenticate by token, and hashing 64 passwords would take a minute.
        manager = user_model.objects.create_user(username=f"load-manager-{tag}", password=None)
        manager.groups.add(Group.objects.get(name=Role.MANAGER))
        reviewer_group = Group.objects.get(name=Role.REVIEWER)
        reviewers = []
        for i in range(args.reviewers):
            user = user_model.objects.create_user(username=f"load-rev-{tag}-{i:03d}", password=None)
            user.groups.add(reviewer_group)
            reviewers.append(user)
        # No expiry: a saved config stays usable; the users are the benchmark's own.
        tokens = [token_create(user=user, name="labeling load", expires_at=None).key for user in reviewers]
    project = project_create(name=f"Load test {tag}", created_by=manager)
    campaign = campaign_create(
        project=project,
        created_by=manager,
        name=f"Load test {tag}",
        question_schema=PAIRWISE_SCHEMA,
        guidelines=GUIDELINES,
        overlap=args.overlap,
    )
    payload = _task_rows(args.tasks)
    result = tasks_import(campaign=campaign, stream=io.BytesIO(payload), file_format="jsonl", size=len(payload))
    campaign_set_reviewers(campaign=campaign, usernames=[u.get_username() for u in reviewers])
    campaign_set_status(campaign=campaign, status=CampaignStatus.ACTIVE)
    imported_s = time.perf_counter() - started
    # What `manage.py worker` does after an import when it has no job: store each response's HTML.
    rendered = 0 if args.no_render else responses_render_pending()

    config = {
        "campaign_id": campaign.pk,
        "tokens": tokens,
        "tasks": result.created,
        "overlap": args.overlap,
        "created": tag,
    }
    path = Path(args.config)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(config, handle, indent=2)
    print(
        f"campaign {campaign.pk} ({result.created} tasks, overlap {args.overlap}: room for "
        f"{result.created * args.overlap} cycles), {len(tokens)} reviewers, in {imported_s:.1f} s; rendered "
        f"{rendered} responses in {time.perf_counter() - started - imported_s:.1f} s more; wrote {path}"
    )
    return 0


# --- load (HTTP side) ------------------------------------------------------------------------


def _percentile(sorted_values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of an ascending sequence; NaN when empty."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * share // 1))  # ceil(n * share), at least 1
    return sorted_values[int(rank) - 1]


@dataclass
class Phase:
    """What one measured phase (cycles, or one trivial view) observed."""

    name: str
    concurrency: int
    elapsed_s: float = 0.0
    completed: int = 0  # cycles, or successful trivial requests
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    exhausted_reviewers: int = 0
    machine_cpu_busy: float = float("nan")  # share of all cores, 0..1, without steal
    machine_cpu_steal: float = float("nan")  # share of all cores the hypervisor gave to other guests
    loadgen_cores: float = float("nan")
    process_cores: dict[str, float] = field(default_factory=dict)  # --watch NAME=PID trees
    busiest_children: dict[str, list[float]] = field(default_factory=dict)  # cores of their busiest children

    @property
    def rate(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @classmethod
    def merged(cls, slices: Sequence[Phase]) -> Phase:
        """One phase from the slices of it run in turn with the others (``--slices``): counts and
        latencies added up, CPU shares averaged over the slices' time."""
        first, total_s = slices[0], sum(part.elapsed_s for part in slices)

        def mean(share: Callable[[Phase], float]) -> float:
            return sum(share(part) * part.elapsed_s for part in slices) / total_s if total_s else float("nan")

        whole = cls(first.name, first.concurrency, elapsed_s=total_s)
        for part in slices:
            whole.completed += part.completed
            whole.exhausted_reviewers += part.exhausted_reviewers
            whole.errors.update(part.errors)
            for kind, values in part.latencies_ms.items():
                whole.latencies_ms.setdefault(kind, []).extend(values)
        whole.machine_cpu_busy = mean(lambda part: part.machine_cpu_busy)
        whole.machine_cpu_steal = mean(lambda part: part.machine_cpu_steal)
        whole.loadgen_cores = mean(lambda part: part.loadgen_cores)
        for name in first.process_cores:
            whole.process_cores[name] = mean(lambda part, name=name: part.process_cores.get(name, float("nan")))
            width = min(len(part.busiest_children.get(name, [])) for part in slices)
            whole.busiest_children[name] = [
                mean(lambda part, name=name, i=i: part.busiest_children[name][i]) for i in range(width)
            ]
        return whole

    def record(self, kind: str, latency_ms: float) -> None:
        self.latencies_ms.setdefault(kind, []).append(latency_ms)

    def percentiles(self, kind: str) -> tuple[float, float, float]:
        values = sorted(self.latencies_ms.get(kind, []))
        return _percentile(values, 0.50), _percentile(values, 0.95), _percentile(values, 0.99)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "concurrency": self.concurrency,
            "elapsed_s": round(self.elapsed_s, 3),
            "completed": self.completed,
            "rate_per_s": round(self.rate, 1),
            "latency_ms": {
                kind: dict(zip(("p50", "p95", "p99"), (round(v, 1) for v in self.percentiles(kind)), strict=True))
                for kind in self.latencies_ms
            },
            "errors": dict(self.errors),
            "exhausted_reviewers": self.exhausted_reviewers,
            "machine_cpu_busy": round(self.machine_cpu_busy, 3),
            "machine_cpu_steal": round(self.machine_cpu_steal, 3),
            "loadgen_cores": round(self.loadgen_cores, 3),
            "process_cores": {name: round(cores, 3) for name, cores in self.process_cores.items()},
        }

    def cpu_line(self) -> str:
        """Where the machine's CPU went during the phase, in cores."""
        cpus = os.cpu_count() or 1
        parts = [
            f"machine {self.machine_cpu_busy * cpus:.2f} of {cpus} cores busy",
            f"stolen {self.machine_cpu_steal * cpus:.2f}",
            f"loadgen {self.loadgen_cores:.2f}",
        ]
        for name, cores in self.process_cores.items():
            busiest = [c for c in self.busiest_children.get(name, []) if c >= 0.05]
            split = f" (busiest children {', '.join(f'{c:.2f}' for c in busiest)})" if len(busiest) > 1 else ""
            parts.append(f"{name} {cores:.2f}{split}")
        if self.process_cores:
            other = self.machine_cpu_busy * cpus - self.loadgen_cores - sum(self.process_cores.values())
            parts.append(f"other {max(other, 0.0):.2f}")
        line = ", ".join(parts)
        if self.process_cores and self.rate > 0:
            per_op = {name: cores * 1000 / self.rate for name, cores in self.process_cores.items()}
            line += "; CPU ms per op: " + ", ".join(f"{name} {ms:.1f}" for name, ms in per_op.items())
        return line


class Budget:
    """At most ``limit`` iterations in a phase, shared by its workers (one event loop)."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


@dataclass(frozen=True)
class CpuTimes:
    """Jiffies of the whole machine so far: busy (not idle, iowait or steal), steal, and all."""

    busy: int
    steal: int
    total: int


def _cpu_times() -> CpuTimes | None:
    """The machine's CPU times from /proc/stat; None where unavailable.

    Steal is time a virtual machine's CPUs were ready to run but the hypervisor ran another
    guest: a phase with much of it ran on a slower machine, and its figures do not compare.
    """
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    steal = values[7] if len(values) > 7 else 0
    return CpuTimes(sum(values) - idle - steal, steal, sum(values))


@dataclass(frozen=True)
class TreeCpu:
    """CPU seconds of a process tree: in all, and by direct child (each with its own descendants)."""

    total: float
    by_child: dict[int, float]


def _tree_cpu(root: int) -> TreeCpu | None:
    """CPU used so far by process ``root`` and its descendants, reaped ones included (Linux only).

    Sums utime + stime + cutime + cstime over the live tree: a child that exited is counted
    in its parent's cutime, so short-lived PostgreSQL backends are too. None if ``root`` is gone.
    """
    parents: dict[int, int] = {}
    used: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        used[pid] = sum(int(v) for v in fields[11:15])
    if root not in used:
        return None
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)

    def subtree(pid: int) -> int:
        return used[pid] + sum(subtree(child) for child in children.get(pid, []))

    tick = os.sysconf("SC_CLK_TCK")
    by_child = {child: subtree(child) / tick for child in children.get(root, [])}
    return TreeCpu(used[root] / tick + sum(by_child.values()), by_child)


@dataclass(frozen=True)
class Target:
    base_url: str
    campaign_id: int
    tokens: list[str]


async def _call(
    session: Any, phase: Phase, kind: str, method: str, url: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    """Send one request; returns (status, parsed JSON or None). Latency is recorded for 2xx only.

    A transport failure comes back as status 0 and is counted as ``<kind> <ExceptionName>``.
    """
    import aiohttp

    started = time.perf_counter()
    try:
        async with session.request(method, url, headers=headers, json=body) as response:
            raw = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        phase.errors[f"{kind} {type(error).__name__}"] += 1
        return 0, None
    latency_ms = (time.perf_counter() - started) * 1000
    if 200 <= status < 300:
        phase.record(kind, latency_ms)
        return status, json.loads(raw) if raw else None
    phase.errors[f"{kind} {status}"] += 1
    return status, None


def _answer(payload: dict[str, Any], *, claim_next: bool = False) -> dict[str, Any]:
    """A submit body for a task payload: the first response shown wins."""
    body = {
        "answers": {"preference": {"winner": payload["responses"][0]["id"], "strength": 1}},
        "client_submission_id": str(uuid.uuid4()),
        "time_spent_ms": 1000,
    }
    return {**body, "claim_next": True} if claim_next else body


async def _reviewer_loop(
    session: Any, target: Target, token: str, phase: Phase, deadline: float, budget: Budget, *, combined: bool
) -> None:
    """One simulated reviewer until the deadline (a started cycle is finished).

    Each cycle asks ``next/`` for a task and submits an answer. ``combined``: the submit
    also holds the next task (``claim_next``), so after the first cycle a cycle is one request.
    """
    headers = {"Authorization": f"Token {token}"}
    next_url = f"{target.base_url}/api/campaigns/{target.campaign_id}/next/"
    payload = None
    while time.monotonic() < deadline and budget.take():
        cycle_started = time.perf_counter()
        if payload is None:
            status, payload = await _call(session, phase, "next", "POST", next_url, headers)
            if status == 204:
                phase.exhausted_reviewers += 1
                return
            if status != 200 or not payload:
                payload = None
                await asyncio.sleep(ERROR_BACKOFF_S)
                continue
        submit_url = f"{target.base_url}/api/assignments/{payload['assignment_id']}/submit/"
        status, saved = await _call(
            session, phase, "submit", "POST", submit_url, headers, _answer(payload, claim_next=combined)
        )
        payload = (saved or {}).get("next") if combined else None
        if status == 201:
            phase.completed += 1
            phase.record("cycle", (time.perf_counter() - cycle_started) * 1000)
        else:
            await asyncio.sleep(ERROR_BACKOFF_S)


async def _trivial_loop(
    session: Any, url: str, kind: str, token: str | None, phase: Phase, deadline: float, budget: Budget
) -> None:
    headers = {"Authorization": f"Token {token}"} if token else {}
    while time.monotonic() < deadline and budget.take():
        status, _ = await _call(session, phase, kind, "GET", url, headers)
        if status == 200:
            phase.completed += 1
        else:
            await asyncio.sleep(ERROR_BACKOFF_S)


Worker = Callable[[Any, int, Phase, float, Budget], Awaitable[None]]


async def _run_phase(
    name: str,
    concurrency: int,
    worker: Worker,
    *,
    seconds: float,
    warmup: float,
    max_iterations: int,
    watch: dict[str, int],
    burst: bool = False,
) -> Phase:
    """Warm up, then run ``concurrency`` workers over one session whose pool holds that many connections.

    The workers join one by one over the first half of the warm-up, so the keep-alive connections
    open while the server is busy, as reviewers arriving over time would open them. A server
    whose worker processes share one listening socket (uvicorn --workers) otherwise hands a
    burst of simultaneous connections mostly to one process. ``burst`` starts them all at once.
    """
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if warmup > 0:
            scratch = Phase(name, concurrency)
            deadline = time.monotonic() + warmup
            budget = Budget(max_iterations)
            step = 0.0 if burst else warmup / 2 / concurrency

            async def join_later(index: int) -> None:
                await asyncio.sleep(index * step)
                await worker(session, index, scratch, deadline, budget)

            await asyncio.gather(*(join_later(i) for i in range(concurrency)))
        phase = Phase(name, concurrency)
        cpu_before, process_before = _cpu_times(), time.process_time()
        watched_before = {label: _tree_cpu(pid) for label, pid in watch.items()}
        started = time.monotonic()
        deadline = started + seconds
        budget = Budget(max_iterations)
        await asyncio.gather(*(worker(session, i, phase, deadline, budget) for i in range(concurrency)))
        phase.elapsed_s = time.monotonic() - started
        cpu_after = _cpu_times()
        for label, before in watched_before.items():
            after = _tree_cpu(watch[label])
            if before is None or after is None:
                continue
            phase.process_cores[label] = (after.total - before.total) / phase.elapsed_s
            # Children alive through the phase, e.g. the server's workers: shows an uneven spread.
            spent = [
                (t - before.by_child[c]) / phase.elapsed_s for c, t in after.by_child.items() if c in before.by_child
            ]
            phase.busiest_children[label] = sorted(spent, reverse=True)[:4]
        phase.loadgen_cores = (time.process_time() - process_before) / phase.elapsed_s
        if cpu_before and cpu_after and cpu_after.total > cpu_before.total:
            elapsed = cpu_after.total - cpu_before.total
            phase.machine_cpu_busy = (cpu_after.busy - cpu_before.busy) / elapsed
            phase.machine_cpu_steal = (cpu_after.steal - cpu_before.steal) / elapsed
    return phase


def _fmt_ms(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"  # NaN -> "-"


def _print_phase(phase: Phase, kinds: Sequence[str]) -> None:
    unit = "cycles/s" if phase.name in CYCLE_MODES else "req/s"
    print(f"  {phase.name:<8} {phase.completed:>7} in {phase.elapsed_s:5.1f} s = {phase.rate:8.1f} {unit}")
    print(f"    CPU: {phase.cpu_line()}")
    for kind in kinds:
        p50, p95, p99 = phase.percentiles(kind)
        count = len(phase.latencies_ms.get(kind, []))
        print(f"    {kind:<8} n={count:<7} p50 {_fmt_ms(p50):>7}  p95 {_fmt_ms(p95):>7}  p99 {_fmt_ms(p99):>7} ms")
    if phase.errors:
        print("    errors: " + ", ".join(f"{key}: {n}" for key, n in sorted(phase.errors.items())))
    if phase.exhausted_reviewers:
        print(f"    {phase.exhausted_reviewers} reviewer(s) got 204 (nothing left): run `setup` again")


@dataclass
class LevelResult:
    concurrency: int
    cycles: dict[str, Phase]  # by mode (CYCLE_MODES)
    trivial: dict[str, Phase]

    def cost(self, mode: str, name: str) -> float:
        """How many trivial requests of ``name`` the server does in the time of one cycle."""
        rate = self.cycles[mode].rate
        return self.trivial[name].rate / rate if rate > 0 else float("nan")

    def worst_p99(self, mode: str) -> float:
        return max(self.cycles[mode].percentiles("next")[2], self.cycles[mode].percentiles("submit")[2])


async def _run_level(target: Target, concurrency: int, args: argparse.Namespace) -> LevelResult:
    tokens = target.tokens

    def cycle_worker(combined: bool) -> Worker:
        async def worker(session: Any, index: int, phase: Phase, deadline: float, budget: Budget) -> None:
            await _reviewer_loop(session, target, tokens[index], phase, deadline, budget, combined=combined)

        return worker

    def trivial_worker(path: str, kind: str, authenticated: bool) -> Worker:
        async def worker(session: Any, index: int, phase: Phase, deadline: float, budget: Budget) -> None:
            token = tokens[index] if authenticated else None
            await _trivial_loop(session, f"{target.base_url}{path}", kind, token, phase, deadline, budget)

        return worker

    print(f"\n== C = {concurrency} ==")
    common = {
        "seconds": args.seconds / args.slices,
        "warmup": args.warmup,
        "max_iterations": args.max_iterations,
        "watch": args.watch,
        "burst": args.burst,
    }
    loads = {mode: cycle_worker(CYCLE_MODES[mode]) for mode in args.cycles}
    loads["me"] = trivial_worker("/api/me/", "me", authenticated=True)
    loads["healthz"] = trivial_worker("/healthz", "healthz", authenticated=False)
    # Each phase runs in slices, the phases' slices in turn, so that a drift in the machine's
    # speed during the run weighs on cycles and trivial requests alike.
    slices: dict[str, list[Phase]] = {name: [] for name in loads}
    for _ in range(args.slices):
        for name, worker in loads.items():
            slices[name].append(await _run_phase(name, concurrency, worker, **common))
    phases = {name: Phase.merged(parts) for name, parts in slices.items()}
    cycles = {mode: phases[mode] for mode in args.cycles}
    trivial = {name: phases[name] for name in ("me", "healthz")}
    for phase in cycles.values():
        _print_phase(phase, ("next", "submit", "cycle"))
    for name, phase in trivial.items():
        _print_phase(phase, (name,))
    level = LevelResult(concurrency, cycles, trivial)
    for mode in cycles:
        print(
            f"  a {mode} cycle costs {level.cost(mode, 'me'):.1f} GET /api/me/ (the floor: same token auth), "
            f"{level.cost(mode, 'healthz'):.1f} GET /healthz"
        )
    return level


def _print_summary(levels: Sequence[LevelResult]) -> dict[str, bool]:
    """One row per C and cycle mode; CPU columns are cores during the cycles.

    busy: the whole machine; stolen: taken by the hypervisor for other guests (a run with much
    of it ran on a slower machine).
    """
    first = next(iter(levels[0].cycles.values()), None) if levels else None
    watched = list(first.process_cores) if first else []
    print("\n== Summary (latency in ms; cost = trivial req/s / cycles/s; CPU in cores during the cycles) ==")
    header = (
        f"{'C':>3} {'cycle':>8} {'cycles/s':>9} {'next p50/p95/p99':>20} {'submit p50/p95/p99':>20} "
        f"{'me/s':>7} {'healthz/s':>9} {'cost me':>8} {'cost hz':>8} {'busy':>5} {'stolen':>6} {'gen':>5}"
        + "".join(f" {name[:8]:>8}" for name in watched)
        + " errors"
    )
    print(header)
    print("-" * len(header))
    cpus = os.cpu_count() or 1
    for level in levels:
        for mode, cycles in level.cycles.items():
            nxt = "/".join(_fmt_ms(v) for v in cycles.percentiles("next"))
            sub = "/".join(_fmt_ms(v) for v in cycles.percentiles("submit"))
            errors = sum(cycles.errors.values()) + sum(sum(p.errors.values()) for p in level.trivial.values())
            print(
                f"{level.concurrency:>3} {mode:>8} {cycles.rate:>9.1f} {nxt:>20} {sub:>20} "
                f"{level.trivial['me'].rate:>7.1f} {level.trivial['healthz'].rate:>9.1f} "
                f"{level.cost(mode, 'me'):>8.1f} {level.cost(mode, 'healthz'):>8.1f} "
                f"{cycles.machine_cpu_busy * cpus:>5.2f} {cycles.machine_cpu_steal * cpus:>6.2f} "
                f"{cycles.loadgen_cores:>5.2f}"
                + "".join(f" {cycles.process_cores.get(name, float('nan')):>8.2f}" for name in watched)
                + f" {errors}"
            )
    at_target = next((lv for lv in levels if lv.concurrency == TARGET_CONCURRENCY), None)
    if at_target is None:
        return {}
    met = {}
    for mode, cycles in at_target.cycles.items():
        p99, cost = at_target.worst_p99(mode), at_target.cost(mode, "me")
        checks = [
            (f"cycles/s >= {TARGET_CYCLES_PER_S:.0f}", f"{cycles.rate:.1f}", cycles.rate >= TARGET_CYCLES_PER_S),
            (f"p99 <= {TARGET_P99_MS:.0f} ms", f"{p99:.1f}", p99 <= TARGET_P99_MS),
            (f"cost <= {TARGET_COST:.0f} /api/me/", f"{cost:.1f}", cost <= TARGET_COST),
        ]
        print(
            f"Target at C = {TARGET_CONCURRENCY}, {mode} cycles: "
            + "; ".join(f"{t}: {v} {'ok' if ok else 'MISSED'}" for t, v, ok in checks)
        )
        met[mode] = all(ok for _, _, ok in checks)
    return met


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOOPBACK_HOSTS:
        raise SystemExit(f"--url must be http(s) on a loopback address ({', '.join(sorted(LOOPBACK_HOSTS))}): {url}")
    return url.rstrip("/")


def command_run(args: argparse.Namespace) -> int:
    levels_wanted = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not args.cycles or set(args.cycles) - set(CYCLE_MODES):
        raise SystemExit(f"--cycles takes a comma-separated list of {', '.join(CYCLE_MODES)}.")
    if args.slices < 1:
        raise SystemExit("--slices takes a whole number >= 1.")
    config = json.loads(Path(args.config).read_text())
    tokens: list[str] = config["tokens"]
    if max(levels_wanted) > len(tokens):
        raise SystemExit(f"C = {max(levels_wanted)} needs that many reviewers; the config has {len(tokens)}.")
    target = Target(_check_url(args.url), int(config["campaign_id"]), tokens)
    print(
        f"Load on {target.base_url}, campaign {target.campaign_id}, C = {levels_wanted}, "
        f"{args.seconds:g} s per phase in {args.slices} slice(s) taken in turn with the other phases, each after "
        f"{args.warmup:g} s of warm-up; {os.cpu_count()} CPUs"
    )

    async def run_all() -> list[LevelResult]:
        return [await _run_level(target, c, args) for c in levels_wanted]

    runner: Callable[..., Any] = asyncio.run
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    # One run proves little on a shared machine: --repeat runs the whole set again and counts
    # the rounds in which every target was met.
    rounds, met_in = [], Counter()
    for round_number in range(1, args.repeat + 1):
        if args.repeat > 1:
            print(f"\n#### Round {round_number} of {args.repeat}")
        levels = runner(run_all())
        met_in.update(mode for mode, met in _print_summary(levels).items() if met)
        rounds.append(levels)
    if args.repeat > 1:
        print(
            f"\nEvery target at C = {TARGET_CONCURRENCY} met in: "
            + ", ".join(f"{mode} cycles {met_in[mode]} of {args.repeat} rounds" for mode in args.cycles)
        )
    if args.json:
        summary = [
            [
                {
                    "concurrency": lv.concurrency,
                    **{f"cycles_{mode}": phase.to_json() for mode, phase in lv.cycles.items()},
                    **{k: p.to_json() for k, p in lv.trivial.items()},
                }
                for lv in levels
            ]
            for levels in rounds
        ]
        Path(args.json).write_text(json.dumps(summary if args.repeat > 1 else summary[0], indent=2) + "\n")
    return 0


# --- profile (Django side, in-process) -------------------------------------------------------


def command_profile(args: argparse.Namespace) -> int:
    """SQL queries per request type, and where the time of a cycle goes, in-process."""
    _django_setup()
    _require_postgresql(args.allow_sqlite)
    import cProfile
    import pstats

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    config = json.loads(Path(args.config).read_text())
    campaign_id, token = int(config["campaign_id"]), config["tokens"][-1]
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token}")

    def answer(next_response: Any) -> tuple[str, dict[str, Any]]:
        payload = next_response.json()
        return f"/api/assignments/{payload['assignment_id']}/submit/", _answer(payload)

    def cycle() -> None:
        next_response = client.post(f"/api/campaigns/{campaign_id}/next/")
        if next_response.status_code != 200:
            raise SystemExit(f"next answered {next_response.status_code}: {next_response.content[:200]!r}")
        url, body = answer(next_response)
        submit = client.post(url, body, "application/json")
        if submit.status_code != 201:
            raise SystemExit(f"submit answered {submit.status_code}: {submit.content[:200]!r}")

    def measured(send: Callable[[], Any]) -> tuple[Any, list[dict[str, str]], float]:
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = send()
            elapsed_ms = (time.perf_counter() - started) * 1000
        return response, captured.captured_queries, elapsed_ms

    for _ in range(5):  # warm caches (URL resolver, schema parsing, lexers) before counting
        cycle()
        client.get("/api/me/")

    next_response, next_queries, next_ms = measured(lambda: client.post(f"/api/campaigns/{campaign_id}/next/"))
    url, body = answer(next_response)
    rows = [
        ("next", next_queries, next_ms),
        ("submit", *measured(lambda: client.post(url, body, "application/json"))[1:]),
        ("me", *measured(lambda: client.get("/api/me/"))[1:]),
        ("healthz", *measured(lambda: client.get("/healthz"))[1:]),
    ]
    print("SQL queries per request (in-process, warm, connection already open):")
    for kind, queries, elapsed_ms in rows:
        sql_ms = sum(float(q["time"]) for q in queries) * 1000
        print(f"  {kind:<8} {len(queries):>3} queries, {elapsed_ms:6.1f} ms wall, of which SQL {sql_ms:5.1f} ms")
        if args.show_sql:
            for query in queries:
                print(f"      {float(query['time']) * 1000:6.2f} ms  {query['sql'][: args.sql_width]}")

    connects = []
    for _ in range(20):
        connection.close()
        started = time.perf_counter()
        connection.ensure_connection()
        connects.append((time.perf_counter() - started) * 1000)
    connects.sort()
    print(
        f"\nOpening a database connection (each request does, served over ASGI without a connection pool): "
        f"median {connects[len(connects) // 2]:.1f} ms, max {connects[-1]:.1f} ms"
    )

    def per_call_ms(send: Callable[[], Any], count: int) -> tuple[float, float]:
        """Wall and CPU (this process: Django's side, not PostgreSQL's) ms per call."""
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            send()
        return (time.perf_counter() - wall) * 1000 / count, (time.process_time() - cpu) * 1000 / count

    cycle_wall, cycle_cpu = per_call_ms(cycle, args.cycles)
    me_wall, me_cpu = per_call_ms(lambda: client.get("/api/me/"), args.cycles)
    print(
        f"\n{args.cycles} cycles in-process, no profiler: {cycle_wall:.1f} ms wall, {cycle_cpu:.1f} ms CPU per cycle "
        f"(next + submit); GET /api/me/ {me_wall:.1f} ms wall, {me_cpu:.1f} ms CPU: a cycle's Django CPU is "
        f"{cycle_cpu / me_cpu:.1f} of /api/me/'s"
    )

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.cycles):
        cycle()
    profiler.disable()
    for sort in ("tottime", "cumulative"):
        print(f"\ncProfile of {args.cycles} cycles, top {args.top} by {sort}:")
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats(sort).print_stats(args.top)
        text = stream.getvalue()
        print(text[text.find("   ncalls") :].rstrip())  # without pstats' preamble
    return 0


# --- command line ----------------------------------------------------------------------------

COMMANDS = ("setup", "run", "profile")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    setup = sub.add_parser("setup", help="create reviewers, tokens and a campaign (Django settings)")
    setup.add_argument("--reviewers", type=int, default=64, help="reviewer users to create (>= the largest C)")
    setup.add_argument("--tasks", type=int, default=20_000, help="pairwise tasks to import")
    setup.add_argument("--overlap", type=int, default=3, help="judgements wanted per task")
    setup.add_argument(
        "--no-render",
        action="store_true",
        help="leave the responses unrendered, as before the worker's pass (claims then render them)",
    )

    run = sub.add_parser("run", help="run the load against a running server (the default)")
    run.add_argument("--url", default="http://127.0.0.1:8000", help="the server, on a loopback address")
    run.add_argument("--seconds", type=float, default=15.0, help="measured seconds per phase")
    run.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each slice of a phase")
    run.add_argument(
        "--slices",
        type=int,
        default=3,
        help="run each phase in this many slices, in turn with the other phases, so that a drift in the "
        "machine's speed weighs on every phase alike",
    )
    run.add_argument("--concurrency", default="1,8,32", help="comma-separated levels of C")
    run.add_argument(
        "--cycles",
        default="pair,combined",
        type=lambda value: [mode.strip() for mode in value.split(",") if mode.strip()],
        help="cycle modes to run: pair (next/, then submit/), combined (submit/ with claim_next)",
    )
    run.add_argument("--max-iterations", type=int, default=100_000, help="cap on cycles/requests per phase")
    run.add_argument("--json", help="also write the results to this JSON file (a list of rounds with --repeat)")
    run.add_argument("--repeat", type=int, default=1, help="rounds of the whole run; counts rounds meeting the target")
    run.add_argument("--no-uvloop", action="store_true", help="use asyncio's default event loop")
    run.add_argument("--burst", action="store_true", help="open all C connections at once instead of over the warm-up")
    run.add_argument(
        "--watch",
        type=_name_and_pid,
        action="append",
        default=[],
        metavar="NAME=PID",
        help="report the CPU of this process and its children (e.g. server=<uvicorn pid>, postgres=<postmaster pid>)",
    )

    profile = sub.add_parser("profile", help="SQL queries per request and a cProfile of cycles (Django settings)")
    profile.add_argument("--cycles", type=int, default=200)
    profile.add_argument("--top", type=int, default=30, help="rows of each cProfile table")
    profile.add_argument("--show-sql", action="store_true", help="print every query")
    profile.add_argument("--sql-width", type=int, default=220, help="characters of each query to print")

    for command in (setup, run, profile):
        command.add_argument("--config", default=str(DEFAULT_CONFIG), help="campaign id and tokens (JSON)")
    for command in (setup, profile):
        command.add_argument("--allow-sqlite", action="store_true", help="do not insist on PostgreSQL")
    return parser


def _name_and_pid(value: str) -> tuple[str, int]:
    name, _, pid = value.partition("=")
    if not name or not pid.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=PID, got {value!r}")
    return name, int(pid)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv = ["run", *argv]
    args = build_parser().parse_args(argv)
    if args.command == "run":
        args.watch = dict(args.watch)
    handlers = {"setup": command_setup, "run": command_run, "profile": command_profile}
    return handlers[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
