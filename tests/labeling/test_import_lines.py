"""Where a line of an import file ends, and where bad UTF-8 in it is reported."""

import io
import json

import pytest

from labeling.models import Task
from labeling.services.imports import ImportRejected, tasks_import
from tests.labeling.factories import make_campaign, pairwise_rows

# Characters that str.splitlines() (and so codecs' readline) takes for line ends, and that
# json.dumps(..., ensure_ascii=False) writes raw inside strings (it escapes the C0 ones).
UNICODE_LINE_BREAKS = ["\u2028", "\u2029", "\x85"]


@pytest.fixture
def campaign(manager):
    return make_campaign(manager=manager)


def unescaped_jsonl(rows) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def import_bytes(campaign, data: bytes, file_format: str = "jsonl"):
    return tasks_import(campaign=campaign, stream=io.BytesIO(data), file_format=file_format, size=len(data))


def rejection(campaign, data: bytes, file_format: str = "jsonl") -> ImportRejected:
    with pytest.raises(ImportRejected) as caught:
        import_bytes(campaign, data, file_format)
    return caught.value


@pytest.mark.parametrize("character", UNICODE_LINE_BREAKS)
def test_it_keeps_unicode_line_breaks_inside_json_strings(campaign, character):
    prompt = f"before{character}after"
    rows = [{"id": "u", "prompt": prompt, "responses": [f"a{character}", "b"], "meta": {"k": character}}]
    result = import_bytes(campaign, unescaped_jsonl([*rows, *pairwise_rows(2)]))
    assert result.created == 3
    task = Task.objects.get(external_id="u")
    assert task.prompt == prompt and task.meta == {"k": character}
    assert task.responses.get(position=0).text == f"a{character}"


def test_it_counts_lines_at_newlines_only(campaign):
    data = unescaped_jsonl([{"prompt": "one\u2028two", "responses": ["a\x85", "b\u2029"]}, *pairwise_rows(1), {}])
    assert rejection(campaign, data).row_errors[0][0] == 3
    assert Task.objects.count() == 0


def test_it_accepts_crlf_line_ends(campaign):
    data = b"".join(json.dumps(row).encode() + b"\r\n" for row in pairwise_rows(2)) + b"\r\n"
    assert import_bytes(campaign, data).created == 2
    assert rejection(campaign, data + b'{"prompt": ""}\r\n').row_errors[0][0] == 4


def test_it_accepts_a_utf8_byte_order_mark(campaign):
    data = "\ufeff".encode() + unescaped_jsonl(pairwise_rows(2))
    assert import_bytes(campaign, data).created == 2


def test_it_names_the_line_and_byte_offset_of_bad_utf8(campaign):
    good = unescaped_jsonl(pairwise_rows(2))
    data = good + b'{"prompt": "caf\xc3", "responses": ["a", "b"]}\n' + unescaped_jsonl(pairwise_rows(1, start=5))
    error = rejection(campaign, data)
    offset = len(good) + len(b'{"prompt": "caf')
    assert error.row_errors == [(3, f"is not valid UTF-8 (byte offset {offset} in the file)")]
    assert error.message.startswith("Line 3: is not valid UTF-8")
    assert Task.objects.count() == 0


def test_it_goes_on_checking_after_bad_utf8(campaign):
    data = b'{"prompt": "\xff"}\n' + unescaped_jsonl(pairwise_rows(1)) + b'{"prompt": ""}\n'
    assert [line for line, _ in rejection(campaign, data).row_errors] == [1, 3]


def test_it_names_the_line_and_byte_offset_of_bad_utf8_in_csv(campaign):
    head = b"id,prompt,response_1,response_2\nc1,one,a,b\n"
    data = head + b'c2,"two\r\nlines",a,b\nc3,thr\xe9e,a,b\nc4,four,a,b\n'
    error = rejection(campaign, data, "csv")
    offset = data.index(b"\xe9")
    assert error.row_errors == [(5, f"is not valid UTF-8 (byte offset {offset} in the file)")]
    assert Task.objects.count() == 0


def test_it_reads_csv_with_any_line_end_and_quoted_line_breaks(campaign):
    data = (
        "\ufeffid,prompt,response_1,response_2\r\n"
        'c1,"multi\r\nline\u2028prompt",a,b\r\n'
        "c2,two,a\u2029,b\rc3,three,a,b\n"
    ).encode()
    assert import_bytes(campaign, data, "csv").created == 3
    assert Task.objects.get(external_id="c1").prompt == "multi\r\nline\u2028prompt"
    assert Task.objects.get(external_id="c2").responses.get(position=0).text == "a\u2029"
