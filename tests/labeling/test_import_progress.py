"""An import reports its progress as it goes, for a caller showing it (a page, a job)."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labeling.services import imports
from labeling.services.imports import ImportRejected, tasks_import, tasks_import_file
from tests.labeling.factories import jsonl, make_campaign, pairwise_rows


@pytest.fixture
def campaign(manager):
    return make_campaign(manager=manager)


def test_it_reports_rows_and_bytes_read_after_each_batch_and_at_the_end(campaign):
    count = imports.BATCH_SIZE * 2 + 5
    data = jsonl(pairwise_rows(count))
    calls = []
    tasks_import(
        campaign=campaign,
        stream=io.BytesIO(data),
        file_format="jsonl",
        on_progress=lambda rows, bytes_read: calls.append((rows, bytes_read)),
    )
    # The last call comes once the import has committed.
    assert [rows for rows, _ in calls] == [imports.BATCH_SIZE, imports.BATCH_SIZE * 2, count]
    assert [bytes_read for _, bytes_read in calls] == [
        len(jsonl(pairwise_rows(imports.BATCH_SIZE))),
        len(jsonl(pairwise_rows(imports.BATCH_SIZE * 2))),
        len(data),
    ]


def test_it_reports_progress_for_csv_and_parquet_files(campaign, tmp_path):
    path = tmp_path / "tasks.csv"
    path.write_bytes(b"id,prompt,response_1,response_2\nc1,one,a,b\nc2,two,a,b\n")
    calls = []
    tasks_import_file(campaign=campaign, path=path, on_progress=lambda *call: calls.append(call))
    assert calls == [(2, path.stat().st_size)]
    path = tmp_path / "tasks.parquet"
    pq.write_table(pa.Table.from_pylist(pairwise_rows(3)), path)
    calls = []
    tasks_import_file(campaign=campaign, path=path, on_progress=lambda *call: calls.append(call))
    assert len(calls) == 1 and calls[0][0] == 3 and 0 < calls[0][1] <= path.stat().st_size


def test_it_reports_progress_while_it_checks_a_file_it_then_refuses(campaign):
    calls = []
    data = jsonl([*pairwise_rows(imports.BATCH_SIZE), {"prompt": ""}])
    with pytest.raises(ImportRejected):
        tasks_import(
            campaign=campaign,
            stream=io.BytesIO(data),
            file_format="jsonl",
            on_progress=lambda *call: calls.append(call),
        )
    assert calls == [(imports.BATCH_SIZE, len(jsonl(pairwise_rows(imports.BATCH_SIZE))))]
