"""Task ids in an import: normalised, unique within a file, skipped when already in the campaign."""

import io

import pytest

from labeling.models import Task
from labeling.services.imports import ImportRejected, tasks_import
from tests.labeling.factories import import_rows, make_campaign, pairwise_rows


@pytest.fixture
def campaign(manager):
    return make_campaign(manager=manager)


def rejected(campaign, rows) -> ImportRejected:
    with pytest.raises(ImportRejected) as caught:
        import_rows(campaign, rows)
    return caught.value


def row(external_id, text="q"):
    return {"id": external_id, "prompt": text, "responses": ["a", "b"]}


def test_it_refuses_an_id_repeated_in_the_file_naming_both_lines(campaign):
    rows = [*pairwise_rows(2), row("x", "first"), *pairwise_rows(3, start=2), row("x", "other content")]
    error = rejected(campaign, rows)
    assert error.row_errors == [(7, "id 'x' repeats line 3")]
    assert error.message == "Line 7: id 'x' repeats line 3. Nothing was imported."
    assert Task.objects.count() == 0


def test_it_refuses_a_repeated_id_even_with_the_same_content(campaign):
    assert rejected(campaign, [row("x"), row("x")]).row_errors == [(2, "id 'x' repeats line 1")]


def test_it_refuses_an_id_repeated_in_the_file_that_is_also_in_the_campaign(campaign):
    import_rows(campaign, [row("x")])
    assert rejected(campaign, [row("x"), row("x")]).row_errors == [(2, "id 'x' repeats line 1")]
    assert campaign.tasks.count() == 1


def test_it_refuses_an_id_repeated_in_csv(campaign):
    data = b"id,prompt,response_1,response_2\nc1,one,a,b\nc2,two,a,b\nc1,three,a,b\n"
    with pytest.raises(ImportRejected) as caught:
        tasks_import(campaign=campaign, stream=io.BytesIO(data), file_format="csv")
    assert caught.value.row_errors == [(4, "id 'c1' repeats line 2")]


def test_it_still_skips_and_counts_ids_already_in_the_campaign(campaign):
    import_rows(campaign, pairwise_rows(3))
    result = import_rows(campaign, pairwise_rows(4, start=1))
    assert (result.created, result.skipped_duplicates) == (2, 2)
    assert campaign.tasks.count() == 5


def test_rows_without_ids_are_never_duplicates(campaign):
    result = import_rows(campaign, [{"prompt": "q", "responses": ["a", "b"]}] * 3)
    assert (result.created, result.skipped_duplicates) == (3, 0)


@pytest.mark.parametrize(
    "invisible",
    ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202e", "\u2060", "\u2064", "\u2066", "\u2069",
     "\ufeff", "\u00ad"],
)  # fmt: skip
def test_ids_differing_only_by_invisible_characters_are_one_id(campaign, invisible):
    assert rejected(campaign, [row("f3"), row(f"f{invisible}3{invisible}")]).row_errors == [
        (2, "id 'f3' repeats line 1")
    ]
    import_rows(campaign, [row(f"{invisible}f3")])
    assert list(Task.objects.values_list("external_id", flat=True)) == ["f3"]
    assert import_rows(campaign, [row("f3")]).skipped_duplicates == 1


def test_ids_are_stored_in_nfc_without_surrounding_whitespace(campaign):
    decomposed = "cafe\u0301"
    import_rows(campaign, [row(f" \t{decomposed}\u00a0")])
    assert Task.objects.get().external_id == "caf\u00e9"
    assert import_rows(campaign, [row("caf\u00e9")]).skipped_duplicates == 1


def test_ids_already_stored_unnormalised_are_matched_once_normalised(campaign):
    Task.objects.create(campaign=campaign, external_id="g7\u200b", prompt="old")
    assert import_rows(campaign, [row("g7")]).skipped_duplicates == 1


@pytest.mark.parametrize("bad_id", [" ", "\u200b", "\u200e\u200f \ufeff"])
def test_an_id_empty_once_normalised_is_a_line_error(campaign, bad_id):
    error = rejected(campaign, [*pairwise_rows(1), row(bad_id)])
    assert error.row_errors[0][0] == 2
    assert "id is empty" in error.row_errors[0][1]


def test_an_integer_id_is_text(campaign):
    import_rows(campaign, [row(7)])
    assert import_rows(campaign, [row("7")]).skipped_duplicates == 1
