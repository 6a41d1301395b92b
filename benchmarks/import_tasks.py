"""How fast a large task file imports: rows/s and peak memory for JSONL, CSV and Parquet.

Writes N synthetic pairwise tasks (default 100,000) to temporary files, imports each into a
fresh campaign through the same service the upload page and `manage.py import_tasks` use,
prints the figures, then deletes what it created.

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

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402

from labeling.models import Project  # noqa: E402
from labeling.services.campaigns import campaign_create, project_create  # noqa: E402
from labeling.services.imports import tasks_import_file  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--formats", default="jsonl,csv,parquet")
    args = parser.parse_args()

    user, _ = get_user_model().objects.get_or_create(username="import-benchmark")
    project = project_create(name="Import benchmark", created_by=user)
    print(f"database: {connection.vendor}; rows per file: {args.rows:,}")
    print(f"{'format':<8} {'file MiB':>9} {'seconds':>8} {'rows/s':>9} {'peak RSS MiB':>13}")
    try:
        with tempfile.TemporaryDirectory() as directory:
            files = write_files(args.rows, Path(directory))
            for file_format in args.formats.split(","):
                campaign = campaign_create(
                    project=project, created_by=user, name=f"Import benchmark {file_format}", question_schema=SCHEMA
                )
                path = files[file_format]
                started = time.perf_counter()
                result = tasks_import_file(campaign=campaign, path=path)
                elapsed = time.perf_counter() - started
                if result.created != args.rows:
                    raise SystemExit(f"expected {args.rows} tasks, imported {result.created}")
                peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(
                    f"{file_format:<8} {path.stat().st_size / 2**20:>9.1f} {elapsed:>8.1f} "
                    f"{args.rows / elapsed:>9,.0f} {peak_mib:>13.0f}"
                )
                campaign.delete()
    finally:
        Project.objects.filter(pk=project.pk).delete()
        user.delete()


if __name__ == "__main__":
    main()
