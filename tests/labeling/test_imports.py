import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from labeling.models import Response, Task
from labeling.services.imports import ImportRejected, tasks_import, tasks_import_file
from tests.labeling.factories import RANKING_SCHEMA, import_rows, jsonl, make_campaign, pairwise_rows


@pytest.fixture
def campaign(manager):
    return make_campaign(manager=manager)


def rejected(campaign, rows) -> ImportRejected:
    with pytest.raises(ImportRejected) as caught:
        import_rows(campaign, rows)
    return caught.value


def test_it_imports_tasks_with_responses_models_meta_and_gold(campaign):
    result = import_rows(
        campaign,
        [
            {"id": "a", "prompt": "Hi", "responses": ["one", {"text": "two", "model": "m2", "meta": {"t": 1}}],
             "meta": {"src": "x"}, "gold": {"preferred": 1}},
            {"prompt": [{"role": "user", "content": "Hello"}], "responses": ["x", "y"]},
        ],
    )  # fmt: skip
    assert (result.created, result.skipped_duplicates, result.prompt_only) == (2, 0, 0)
    task = Task.objects.get(external_id="a")
    assert task.is_gold and task.gold == {"preferred": 1} and task.meta == {"src": "x"}
    assert task.response_count == 2
    assert list(task.responses.values_list("position", "text", "model_name")) == [(0, "one", ""), (1, "two", "m2")]
    assert Task.objects.get(external_id="").prompt == [{"role": "user", "content": "Hello"}]


def test_it_skips_ids_already_in_the_campaign_and_refuses_ids_repeated_in_the_file(campaign):
    import_rows(campaign, pairwise_rows(3))
    result = import_rows(campaign, pairwise_rows(2, start=2))
    assert (result.created, result.skipped_duplicates) == (1, 1)
    error = rejected(campaign, [*pairwise_rows(2, start=4), pairwise_rows(1, start=5)[0]])
    assert error.row_errors == [(3, "id 't5' repeats line 2")]
    assert campaign.tasks.count() == 4


def test_it_imports_prompt_only_rows_for_generation(campaign):
    result = import_rows(campaign, [{"id": "p", "prompt": "Write a haiku"}])
    assert result.prompt_only == 1
    assert Task.objects.get(external_id="p").response_count == 0


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        ("{not json", "is not valid JSON"),
        ('["a list"]', "must be a JSON object"),
        ({"prompt": "", "responses": ["a", "b"]}, "prompt must be non-empty text"),
        ({"prompt": [{"role": "robot", "content": "x"}], "responses": ["a", "b"]}, "role must be one of"),
        ({"prompt": "q", "responses": ["a", "b", "c"]}, "pairwise questions compare exactly 2 responses"),
        ({"prompt": "q", "responses": ["only one"]}, "at least 2 responses"),
        ({"prompt": "q", "responses": ["a", ""]}, "responses[1] must be non-empty text"),
        ({"prompt": "q", "responses": ["a", "b"], "gold": {"preferred": 2}}, "gold.preferred must be a response index"),
        ({"prompt": "q", "responses": ["a", "b"], "extra": 1}, "unknown field(s): extra"),
        ({"prompt": "q", "responses": ["a", "b"], "meta": []}, "meta must be an object"),
        ({"prompt": "q", "responses": ["a", "b\u0000"]}, "responses[1] contains a NUL character"),
        ({"prompt": "q", "responses": ["a", "b"], "meta": {"x": ["\u0000"]}}, "meta.x[0] contains a NUL character"),
        ({"prompt": "q", "responses": ["a", "b"], "meta": {"x\u0000": 1}}, "meta has a field name that contains a NUL"),
        ({"prompt": "q", "responses": ["a", "b"], "x\u0000": 1}, "a field name contains a NUL character"),
        ('{"prompt": "q", "responses": ["a", "b"], "meta": {"x": [1, NaN]}}', "meta.x[1] is not a finite number"),
        ('{"prompt": "q", "responses": [{"text": "a", "meta": {"p": -Infinity}}, "b"]}', "responses[0].meta.p is not"),
    ],
)
def test_it_rejects_the_file_at_the_bad_row_and_writes_nothing(campaign, bad_row, reason):
    error = rejected(campaign, [*pairwise_rows(2), bad_row, *pairwise_rows(2, start=5)])
    assert error.row_errors[0][0] == 3
    assert reason in error.row_errors[0][1]
    assert error.message.startswith("Line 3: ")
    assert "Nothing was imported" in error.message
    assert Task.objects.count() == 0 and Response.objects.count() == 0


def test_it_writes_nothing_when_the_bad_row_comes_after_several_batches(campaign):
    error = rejected(campaign, [*pairwise_rows(4500), {"prompt": "q"}, {"prompt": 5}])
    assert error.row_errors == [(4502, "prompt must be text or a non-empty list of {role, content} messages")]
    assert Task.objects.count() == 0


def test_it_reports_several_bad_rows(campaign):
    error = rejected(campaign, [{"prompt": ""}, *pairwise_rows(1), {"prompt": 3}])
    assert [line for line, _ in error.row_errors] == [1, 3]


def test_it_counts_lines_including_blank_ones(campaign):
    data = jsonl(pairwise_rows(1)) + b"\n" + jsonl([{"prompt": ""}])
    with pytest.raises(ImportRejected) as caught:
        tasks_import(campaign=campaign, stream=io.BytesIO(data), file_format="jsonl")
    assert caught.value.row_errors[0][0] == 3


def test_it_rejects_invalid_utf8(campaign):
    with pytest.raises(ImportRejected, match="UTF-8"):
        tasks_import(campaign=campaign, stream=io.BytesIO(b'{"prompt": "\xff"}\n'), file_format="jsonl")


def test_it_rejects_an_empty_file(campaign):
    with pytest.raises(ImportRejected, match="no rows"):
        tasks_import(campaign=campaign, stream=io.BytesIO(b"\n"), file_format="jsonl")


@override_settings(LABELING_IMPORT_MAX_BYTES=1024)
def test_it_refuses_files_over_the_size_limit(campaign):
    with pytest.raises(ImportRejected, match=r"limited to 0 MiB|imports are limited"):
        tasks_import(campaign=campaign, stream=io.BytesIO(b""), file_format="jsonl", size=4096)


def test_it_imports_csv_with_the_same_fields(campaign):
    data = (
        b"id,prompt,response_1,response_2,model_1,gold,meta\n"
        b'c1,"Hi, there",first,second,m-a,"{""preferred"": 0}","{""k"": 1}"\n'
        b"c2,Plain,x,y,,,\n"
    )
    result = tasks_import(campaign=campaign, stream=io.BytesIO(data), file_format="csv")
    assert result.created == 2
    task = Task.objects.get(external_id="c1")
    assert task.prompt == "Hi, there" and task.gold == {"preferred": 0} and task.meta == {"k": 1}
    assert list(task.responses.values_list("text", "model_name")) == [("first", "m-a"), ("second", "")]


def test_it_gives_csv_line_numbers(campaign):
    data = b"prompt,response_1,response_2\nok,a,b\n,a,b\n"
    with pytest.raises(ImportRejected) as caught:
        tasks_import(campaign=campaign, stream=io.BytesIO(data), file_format="csv")
    assert caught.value.row_errors == [(3, "prompt must be non-empty text")]


def test_it_needs_a_prompt_column_in_csv(campaign):
    with pytest.raises(ImportRejected, match="Line 1: the header needs a 'prompt' column"):
        tasks_import(campaign=campaign, stream=io.BytesIO(b"question,a\nx,y\n"), file_format="csv")


def test_it_imports_parquet(campaign, tmp_path):
    table = pa.table(
        {
            "id": ["p1", "p2"],
            "prompt": ["one", "two"],
            "responses": [["a", "b"], ["c", "d"]],
            "gold": [{"preferred": 1}, None],
        }
    )
    path = tmp_path / "tasks.parquet"
    pq.write_table(table, path)
    result = tasks_import_file(campaign=campaign, path=path)
    assert result.created == 2
    assert Task.objects.get(external_id="p1").gold == {"preferred": 1}
    assert not Task.objects.get(external_id="p2").is_gold


def test_it_rejects_a_file_that_is_not_parquet(campaign, tmp_path):
    path = tmp_path / "tasks.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(ImportRejected, match="not a Parquet file"):
        tasks_import_file(campaign=campaign, path=path)


def test_it_checks_ranking_gold(manager):
    campaign = make_campaign(manager=manager, schema=RANKING_SCHEMA)
    import_rows(campaign, [{"prompt": "q", "responses": ["a", "b", "c"], "gold": {"ranking": [2, 0, 1]}}])
    error = rejected(campaign, [{"prompt": "q", "responses": ["a", "b", "c"], "gold": {"ranking": [0, 0, 1]}}])
    assert "gold.ranking must order every response" in error.row_errors[0][1]


def test_it_imports_from_the_command_line(campaign, tmp_path, capsys):
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(jsonl(pairwise_rows(3)))
    call_command("import_tasks", str(path), "--campaign", campaign.slug)
    assert "Imported 3 tasks" in capsys.readouterr().out
    assert campaign.tasks.count() == 3


def test_it_fails_on_the_command_line_with_the_line_number(campaign, tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"prompt": "q", "responses": ["a"]}) + "\n")
    with pytest.raises(CommandError, match="Line 1: a task needs at least 2 responses"):
        call_command("import_tasks", str(path), "--campaign", campaign.slug)
    with pytest.raises(CommandError, match="No campaign"):
        call_command("import_tasks", str(path), "--campaign", "missing")
    (tmp_path / "x.txt").write_text("prompt")
    with pytest.raises(CommandError, match="Cannot tell the format"):
        call_command("import_tasks", str(tmp_path / "x.txt"), "--campaign", campaign.slug)


def test_it_refuses_imports_into_a_closed_campaign(manager):
    from labeling.models import CampaignStatus

    campaign = make_campaign(manager=manager, status=CampaignStatus.CLOSED)
    with pytest.raises(ImportRejected, match="closed"):
        import_rows(campaign, pairwise_rows(1))


def test_it_names_parquet_values_that_json_cannot_hold(campaign, tmp_path):
    import datetime

    table = pa.table(
        {
            "prompt": ["one", "two"],
            "responses": [["a", "b"], ["c", "d"]],
            "meta": [{"when": datetime.date(2026, 1, 2)}, {"when": None}],
        }
    )
    path = tmp_path / "tasks.parquet"
    pq.write_table(table, path)
    with pytest.raises(ImportRejected) as caught:
        tasks_import_file(campaign=campaign, path=path)
    assert caught.value.row_errors == [(1, "meta.when is not a JSON value (it is a date)")]
    assert Task.objects.count() == 0


def test_it_names_csv_cells_the_database_cannot_hold(campaign):
    data = b'prompt,response_1,response_2,meta\nok,a,b,\nnul,a\x00,b,\nnan,a,b,"{""x"": NaN}"\nshort,a\n'
    with pytest.raises(ImportRejected) as caught:
        tasks_import(campaign=campaign, stream=io.BytesIO(data), file_format="csv")
    assert caught.value.row_errors == [
        (3, "responses[0].text contains a NUL character (\\u0000), which cannot be stored"),
        (4, "meta.x is not a finite number"),
        (5, "a task needs at least 2 responses to compare, got 1"),
    ]


def test_text_that_only_looks_like_nul_or_nan_is_imported(campaign):
    rows = [{"id": "look-alike", "prompt": "Is NaN a number, or Infinity? Escape: \\u0000", "responses": ["a", "b"]}]
    assert import_rows(campaign, rows).created == 1
    assert Task.objects.get(external_id="look-alike").prompt == "Is NaN a number, or Infinity? Escape: \\u0000"
