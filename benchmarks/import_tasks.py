"""How fast a large task file imports: seconds and rows/s per phase, and peak memory, for JSONL, CSV and Parquet.

Writes N synthetic pairwise tasks (default 100,000) to temporary files, then for each format:

- read: the file parsed into rows (decoding, JSON or CSV or Parquet), nothing checked;
- validate: read, plus each row checked and normalised (``parse_row``);
- total: the whole import into a fresh campaign through the same service the upload page and
  `manage.py import_tasks` use, end to end, committed;
- write: total less validate, i.e. the id checks, the database writes and the commit.

Each phase is timed on its own pass over the file, so the figures are not slowed by
instrumentation; with ``--repeat`` the passes are interleaved, since this machine's speed
drifts within minutes. Everything created is deleted at the end.

    DEBUG=1 .venv/bin/python benchmarks/import_tasks.py                 # embedded SQLite under var/
    DEBUG=1 DATABASE_URL=postgres://... .venv/bin/python benchmarks/import_tasks.py --rows 100000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_platform.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402

from labeling.models import Project  # noqa: E402
from labeling.schema import QuestionSchema, parse_question_schema  # noqa: E402
from labeling.services.campaigns import campaign_create, project_create  # noqa: E402
from labeling.services.imports import READERS, RowError, format_from_name, parse_row, tasks_import_file  # noqa: E402

SCHEMA = {"questions": [{"id": "preference", "type": "pairwise"}]}


def task_row(i: int) -> dict:
    return {
        "id": f"bench-{i}",
        "prompt": f"Question number {i}: explain the idea behind item {i} in two sentences.",
        "responses": [
            {"text": f"A careful answer to question {i}, with a short example and a caveat.", "model": "m-a"},
            {"text": f"A shorter answer to question {i}.", "model": "m-b"},
        ],
        "meta": {"source": "benchmark"},
    }


def write_files(rows: int, directory: Path) -> dict[str, Path]:
    jsonl = directory / "tasks.jsonl"
    with jsonl.open("w") as handle:
        for i in range(rows):
            handle.write(json.dumps(task_row(i)) + "\n")
    csv_path = directory / "tasks.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "prompt", "response_1", "response_2", "model_1", "model_2"])
        for i in range(rows):
            row = task_row(i)
            writer.writerow([row["id"], row["prompt"], *(r["text"] for r in row["responses"]), "m-a", "m-b"])
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = directory / "tasks.parquet"
    writer = None
    for start in range(0, rows, 10_000):
        table = pa.Table.from_pylist([task_row(i) for i in range(start, min(rows, start + 10_000))])
        writer = writer or pq.ParquetWriter(parquet, table.schema)
        writer.write_table(table)
    writer.close()
    return {"jsonl": jsonl, "csv": csv_path, "parquet": parquet}


def time_read(path: Path) -> float:
    started = time.perf_counter()
    with path.open("rb") as stream:
        for _ in READERS[format_from_name(path.name)](stream):
            pass
    return time.perf_counter() - started


def time_validate(path: Path, schema: QuestionSchema) -> float:
    started = time.perf_counter()
    with path.open("rb") as stream:
        for _line, raw, *_ in READERS[format_from_name(path.name)](stream):
            try:
                parse_row(raw, schema)
            except RowError as error:
                raise SystemExit(f"the benchmark's file has a bad row: {error}") from None
    return time.perf_counter() - started


def server_cpu_seconds() -> float | None:
    """CPU time used so far by this connection's PostgreSQL backend, when it runs on this machine."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return None
    # Fields 14 and 15 (utime, stime) in clock ticks; the name in field 2 may hold spaces.
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_import(path: Path, rows: int, project: Project, user) -> tuple[float, float, float | None]:
    """Wall seconds, this process's CPU seconds and the database server's CPU seconds of one import."""
    campaign = campaign_create(
        project=project, created_by=user, name=f"Import benchmark {path.suffix}", question_schema=SCHEMA
    )
    try:
        server_before = server_cpu_seconds()
        cpu_before, started = time.process_time(), time.perf_counter()
        result = tasks_import_file(campaign=campaign, path=path)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_before
        server_after = server_cpu_seconds()
        server = None if server_before is None or server_after is None else server_after - server_before
        if result.created != rows:
            raise SystemExit(f"expected {rows} tasks, imported {result.created}")
    finally:
        campaign.delete()
    return elapsed, cpu, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--formats", default="jsonl,csv,parquet")
    parser.add_argument("--repeat", type=int, default=1, help="passes of every phase, interleaved")
    args = parser.parse_args()

    user, _ = get_user_model().objects.get_or_create(username="import-benchmark")
    project = project_create(name="Import benchmark", created_by=user)
    schema = parse_question_schema(SCHEMA)
    print(f"database: {connection.vendor} (DEBUG {'on' if settings.DEBUG else 'off'}); rows per file: {args.rows:,}")
    print(f"{'format':<8} {'pass':>4} {'phase':<9} {'seconds':>8} {'rows/s':>9}")
    try:
        with tempfile.TemporaryDirectory() as directory:
            files = write_files(args.rows, Path(directory))
            totals: dict[str, list[float]] = {}
            for repeat in range(1, args.repeat + 1):
                for file_format in args.formats.split(","):
                    path = files[file_format]
                    read = time_read(path)
                    validate = time_validate(path, schema)
                    total, cpu, server = time_import(path, args.rows, project, user)
                    totals.setdefault(file_format, []).append(total)
                    phases = [("read", read), ("validate", validate - read), ("write", total - validate)]
                    for phase, seconds in [*phases, ("total", total)]:
                        print(
                            f"{file_format:<8} {repeat:>4} {phase:<9} {seconds:>8.2f} "
                            f"{args.rows / max(seconds, 1e-9):>9,.0f}"
                        )
                    # CPU seconds drift less than wall seconds on a shared machine.
                    server_note = "" if server is None else f", database server {server:.2f}"
                    print(f"{'':<8} {repeat:>4} cpu s: import process {cpu:.2f}{server_note}")
            peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            for file_format, seconds in totals.items():
                size = files[file_format].stat().st_size / 2**20
                print(
                    f"{file_format}: {size:.1f} MiB, total {min(seconds):.2f} s best of {len(seconds)} "
                    f"({args.rows / min(seconds):,.0f} rows/s); runs: {', '.join(f'{s:.2f}' for s in seconds)}"
                )
            print(f"peak RSS: {peak_mib:.0f} MiB")
    finally:
        Project.objects.filter(pk=project.pk).delete()
        user.delete()


if __name__ == "__main__":
    main()
