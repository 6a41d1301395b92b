"""The task browser's reads: each filter, the sorts, the pages, and the errors of bad input."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from labeling.errors import LabelingError
from labeling.forms import TaskFilterForm
from labeling.selectors import task_detail, tasks_page
from tests.labeling.task_world import build_task_world


@pytest.fixture
def world(manager, make_user):
    return build_task_world(manager, make_user)


def browse(world, query: str = "", **page):
    form = TaskFilterForm(QueryDict(query))
    assert form.is_valid(), form.errors
    return tasks_page(campaign=world.campaign, filters=form.filters(), **page)


def ids(page) -> list[str]:
    return [task.external_id for task in page.tasks]


def test_the_world_is_as_the_filters_expect(world):
    counts = {name: (t.judgement_count, t.agreement, t.flag_count, t.skip_count) for name, t in world.tasks.items()}
    assert counts == {
        "agree": (3, 1.0, 0, 0),
        "split": (3, pytest.approx(2 / 3), 0, 0),
        "flagged": (3, 1.0, 1, 0),
        "skipped": (2, 1.0, 0, 1),
        "gold": (0, None, 0, 0),
        "fresh": (0, None, 0, 0),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["agree", "split", "flagged", "skipped", "gold", "fresh"]),
        ("agreement_max=0.9", ["split"]),
        ("agreement_min=0.9", ["agree", "flagged", "skipped"]),
        ("agreement_min=0.5&agreement_max=0.7", ["split"]),
        ("judgements_min=3", ["agree", "split", "flagged"]),
        ("judgements_max=2", ["skipped", "gold", "fresh"]),
        ("judgements_min=1&judgements_max=2", ["skipped"]),
        ("gold=yes", ["gold"]),
        ("gold=no", ["agree", "split", "flagged", "skipped", "fresh"]),
        ("flagged=yes", ["flagged"]),
        ("flagged=no&judgements_min=1", ["agree", "split", "skipped"]),
        ("skipped=yes", ["skipped"]),
        ("skipped=no&judgements_min=3", ["agree", "split", "flagged"]),
        ("reviewer=browser-judge1", ["agree", "split", "flagged"]),
        ("reviewer=browser-judge0", ["agree", "split", "flagged", "skipped"]),
        ("prompt_min=50", ["split"]),
        ("prompt_max=7", ["agree", "flagged", "skipped"]),
        ("meta=source=web", ["split", "flagged", "skipped"]),
        ("meta=source%3Dforum", ["agree"]),
        ("meta=n=3", ["flagged"]),
        ("meta=missing=x", []),
        ("q=flag", ["flagged"]),
        ("q=HELLO", ["fresh"]),
        ("q=skipp", ["skipped"]),
        ("gold=no&judgements_min=2&agreement_min=0.9&meta=source=web", ["flagged", "skipped"]),
    ],
)
def test_each_filter(world, query, expected):
    page = browse(world, query)
    assert ids(page) == expected
    assert page.count == len(expected)


def test_prompt_length_counts_the_text_of_a_prompt(world):
    lengths = {task.external_id: task.prompt_length for task in browse(world).tasks}
    assert lengths["agree"] == len("Short?")
    assert lengths["split"] == len("A longer question ") + 100


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-id", ["fresh", "gold", "skipped", "flagged", "split", "agree"]),
        ("agreement", ["split", "agree", "flagged", "skipped", "gold", "fresh"]),
        ("-agreement", ["skipped", "flagged", "agree", "split", "fresh", "gold"]),
        ("judgements", ["gold", "fresh", "skipped", "agree", "split", "flagged"]),
        ("-judgements", ["flagged", "split", "agree", "skipped", "fresh", "gold"]),
        ("-flags", ["flagged", "fresh", "gold", "skipped", "split", "agree"]),
        ("-skips", ["skipped", "fresh", "gold", "flagged", "split", "agree"]),
        ("prompt_length", ["agree", "flagged", "skipped", "gold", "fresh", "split"]),
        ("-prompt_length", ["split", "fresh", "gold", "skipped", "flagged", "agree"]),
    ],
)
def test_it_sorts_by_each_column_with_the_id_breaking_ties(world, sort, expected):
    assert ids(browse(world, f"sort={sort}")) == expected


def test_it_pages_with_a_count(world):
    first = browse(world, page=1, page_size=4)
    second = browse(world, page=2, page_size=4)
    assert (first.count, first.pages, len(first.tasks), len(second.tasks)) == (6, 2, 4, 2)
    assert ids(first) + ids(second) == ids(browse(world))
    assert (second.first_index, second.last_index) == (5, 6)
    with pytest.raises(LabelingError) as raised:
        browse(world, page=3, page_size=4)
    assert raised.value.errors == {"page": "Must be from 1 to 2."}
    assert browse(world, "meta=missing=x", page=1).tasks == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("agreement_min=2", "agreement_min"),
        ("agreement_max=-0.1", "agreement_max"),
        ("agreement_min=0.8&agreement_max=0.2", "agreement_max"),
        ("judgements_min=abc", "judgements_min"),
        ("judgements_min=5&judgements_max=1", "judgements_max"),
        ("prompt_min=-1", "prompt_min"),
        ("gold=maybe", "gold"),
        ("flagged=1", "flagged"),
        ("reviewer=nobody-here", "reviewer"),
        ("meta=source", "meta"),
        ("meta=a__b=1", "meta"),
        ("meta=%3Dvalue", "meta"),
        ("meta=bad key=1", "meta"),
        ("sort=password", "sort"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("page_size=501", "page_size"),
    ],
)
def test_bad_input_gets_a_field_error(query, field, db):
    form = TaskFilterForm(QueryDict(query))
    assert not form.is_valid()
    assert list(form.errors) == [field]


def test_the_detail_has_every_judgement_in_the_questions_terms(world):
    detail = task_detail(campaign=world.campaign, task_id=world.tasks["flagged"].pk)
    assert [r["number"] for r in detail.responses] == [1, 2]
    assert [r["text"] for r in detail.responses] == ["A2", "B2"]
    by_reviewer = {j["reviewer"]: j for j in detail.judgements}
    assert set(by_reviewer) == {"browser-judge0", "browser-judge1", "browser-judge2"}
    described = by_reviewer["browser-judge0"]["described"]
    assert described == [
        ("Which is better?", "pairwise", "Response 1, much better"),
        ("Issues", "flags", "Response 2: Unsafe or harmful"),
        ("Why?", "text", "Reason 0"),
    ]
    assert sorted(by_reviewer["browser-judge0"]["shown"]) == [1, 2]
    assert by_reviewer["browser-judge1"]["time_spent"] == "1.5 s"
    assert detail.votes_wanted == 3 and not detail.open_for_votes


def test_the_detail_lists_skips_and_holds(world):
    skipped = task_detail(campaign=world.campaign, task_id=world.tasks["skipped"].pk)
    assert [(s["reviewer"], s["reason"]) for s in skipped.skips] == [("browser-judge1", "Not my <b>field</b>.")]
    fresh = task_detail(campaign=world.campaign, task_id=world.tasks["fresh"].pk)
    assert fresh.holding == 3 and fresh.judgements == []
    assert task_detail(campaign=world.campaign, task_id=world.tasks["gold"].pk).votes_wanted is None
