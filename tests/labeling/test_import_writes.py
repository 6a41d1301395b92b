"""The import's writes: COPY on PostgreSQL, multi-row INSERT on SQLite, the same tasks either way."""

import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.models import Response, Task
from labeling.services import imports
from labeling.services.imports import ImportRejected, tasks_import
from tests.labeling.factories import RANKING_SCHEMA, import_rows, jsonl, make_campaign, pairwise_rows

# Text that COPY's text format escapes (tab, newline, carriage return, backslash, "\N" which
# means NULL), and text outside ASCII and outside the BMP.
AWKWARD = "tab\there\nnew\rline \\ back\\slash \\N \\. 'quote' \"double\" caf\u00e9 \u2028 \U0001f600 end"


@pytest.fixture
def campaign(manager):
    return make_campaign(manager=manager)


def test_it_stores_every_field_exactly(manager):
    campaign = make_campaign(manager=manager, schema=RANKING_SCHEMA)
    rows = [
        {"id": "awkward", "prompt": AWKWARD,
         "responses": [AWKWARD, {"text": "two", "model": f"m\t{AWKWARD[:20]}", "meta": {"k": [1, 2.5, None, True]}},
                       "three"],
         "meta": {"nested": {"text": AWKWARD, "n": -3}, "empty": {}, "list": []}, "gold": {"ranking": [2, 0, 1]}},
        {"prompt": [{"role": "system", "content": AWKWARD}, {"role": "user", "content": "hi"}],
         "responses": ["a", "b", "c"]},
        {"id": 42, "prompt": "prompt only"},
    ]  # fmt: skip
    result = import_rows(campaign, rows)
    assert (result.created, result.prompt_only) == (3, 1)
    task = Task.objects.get(external_id="awkward")
    assert task.prompt == AWKWARD
    assert task.meta == {"nested": {"text": AWKWARD, "n": -3}, "empty": {}, "list": []}
    assert task.gold == {"ranking": [2, 0, 1]} and task.is_gold
    assert (task.response_count, task.slots_taken, task.judgement_count) == (3, 0, 0)
    assert task.created_at is not None
    assert list(task.responses.values_list("position", "text", "model_name", "meta", "html", "rendered_with")) == [
        (0, AWKWARD, "", {}, "", 0),
        (1, "two", f"m\t{AWKWARD[:20]}", {"k": [1, 2.5, None, True]}, "", 0),
        (2, "three", "", {}, "", 0),
    ]
    messages = Task.objects.get(external_id="")
    assert messages.prompt == [{"role": "system", "content": AWKWARD}, {"role": "user", "content": "hi"}]
    assert messages.gold is None and not messages.is_gold and messages.meta == {}
    prompt_only = Task.objects.get(external_id="42")
    assert prompt_only.response_count == 0 and not prompt_only.responses.exists()


def test_it_gives_each_task_its_own_responses_across_batches(campaign):
    count = imports.BATCH_SIZE * 2 + 7
    assert import_rows(campaign, pairwise_rows(count)).created == count
    assert Task.objects.count() == count and Response.objects.count() == 2 * count
    pairs = Response.objects.values_list("task__external_id", "position", "text")
    assert all(text == f"{'AB'[position]}{external_id[1:]}" for external_id, position, text in pairs)
    # Tasks keep the file's order, which the assignment's tie-break on id relies on.
    ids = list(Task.objects.order_by("id").values_list("external_id", flat=True))
    assert ids == [f"t{i}" for i in range(count)]


def test_it_copies_on_postgresql_and_inserts_on_sqlite(campaign):
    with CaptureQueriesContext(connection) as queries:
        import_rows(campaign, pairwise_rows(3))
    statements = [query["sql"].split(" ", 2)[:2] for query in queries]
    if connection.vendor == "postgresql":
        assert ["COPY", "labeling_task"] in statements and ["COPY", "labeling_response"] in statements
        assert not any(verb == "INSERT" for verb, _ in statements)
    else:
        assert ["INSERT", "INTO"] in statements
    assert campaign.tasks.count() == 3


def test_it_writes_nothing_when_another_import_took_an_id_meanwhile(campaign, monkeypatch):
    import_rows(campaign, [{"id": "t5", "prompt": "q", "responses": ["a", "b"]}])
    # As if the other import committed after this one read the campaign's ids.
    monkeypatch.setattr(imports, "_campaign_ids", lambda campaign: set())
    data = jsonl(pairwise_rows(imports.BATCH_SIZE + 10))
    with pytest.raises(ImportRejected, match="Another import added some of these ids"):
        tasks_import(campaign=campaign, stream=io.BytesIO(data), file_format="jsonl", size=len(data))
    assert campaign.tasks.count() == 1 and Response.objects.count() == 2


def test_the_connection_stays_usable_after_a_rejected_import(campaign):
    with pytest.raises(ImportRejected):
        import_rows(campaign, [*pairwise_rows(imports.BATCH_SIZE + 1), {"prompt": ""}])
    assert import_rows(campaign, pairwise_rows(2)).created == 2
    assert Task.objects.get(external_id="t1").prompt == "Question 1?"
