"""Import tasks into a campaign from JSONL, CSV or Parquet.

One task per row (see DESIGN.md, "File formats"). The import is all-or-nothing: rows
are validated and written in batches inside one transaction, and the first bad row
stops the writing; validation goes on to report up to ``MAX_REPORTED_ERRORS`` bad
rows, each with its line (or row) number, and then everything is rolled back.

Ids are normalised (invisible characters removed, Unicode NFC, surrounding whitespace
stripped) and stored that way. Rows whose ``id`` is already in the campaign are skipped and
counted, so a file can be imported again after it grew; an id given twice in the same file
rejects the file, naming both lines, since the file then says two things about one task.
Rows without responses are prompt-only: they wait for a generation job and are never
assigned until they have responses.

JSONL lines end at "\n" (or "\r\n") only, and each is decoded on its own, so bad UTF-8 is
reported at its line and byte offset.

Locks: none beyond the transaction; the campaign's (campaign, external_id) unique
constraint is the final guard if two imports of the same ids race.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, transaction

from labeling.errors import LabelingError
from labeling.models import Campaign, CampaignStatus
from labeling.schema import QuestionSchema
from labeling.services.import_writes import TaskRow, batch_writer
from rlhf_platform import json_limits

FORMATS = ("jsonl", "csv", "parquet")
BATCH_SIZE = 2000
MAX_REPORTED_ERRORS = 20
MAX_TEXT_CHARS = 200_000
MAX_RESPONSES = 16
MESSAGE_ROLES = ("system", "user", "assistant")


class ImportRejected(LabelingError):
    """The file was rejected and nothing was written. ``row_errors`` lists (line, reason)."""

    def __init__(self, message: str, row_errors: list[tuple[int, str]] | None = None):
        self.row_errors = row_errors or []
        super().__init__(message, {f"line {line}": reason for line, reason in self.row_errors})


@dataclass
class ImportResult:
    created: int = 0
    prompt_only: int = 0
    skipped_duplicates: int = 0
    rows: int = 0


class RowError(ValueError):
    pass


def format_from_name(name: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    aliases = {"jsonl": "jsonl", "ndjson": "jsonl", "csv": "csv", "parquet": "parquet", "pq": "parquet"}
    if suffix not in aliases:
        raise ImportRejected(f"Cannot tell the format of {name!r}: use a .jsonl, .csv or .parquet file.")
    return aliases[suffix]


def max_import_bytes() -> int:
    return settings.LABELING_IMPORT_MAX_BYTES


# --- reading -------------------------------------------------------------------------------


class BadUtf8(RowError):
    """A line that is not valid UTF-8, located by line and by byte offset in the file."""

    def __init__(self, line: int, offset: int):
        self.line = line
        super().__init__(f"is not valid UTF-8 (byte offset {offset} in the file)")


# Where a line may end in a CSV file, as Python's universal newlines have it (and csv expects):
# "\r\n", "\r" or "\n". Unicode's other line breaks (U+2028, U+0085, ...) are text.
CSV_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
JSON_WHITESPACE = " \t\r\n"


def _byte_lines(stream: IO[bytes]) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset of its start, bytes) of each line, cut at "\n" and nowhere else.

    Lines are cut in bytes, before decoding, because a decoder reading ahead reports bad
    UTF-8 on the wrong line, and ``str`` line splitting also breaks at U+2028, U+2029 and
    U+0085, which JSON allows raw inside strings. A UTF-8 byte order mark is dropped.
    """
    offset = 0
    # readline, not iteration: Django's File.__iter__ also cuts at a lone "\r".
    for number, line in enumerate(iter(stream.readline, b""), start=1):
        start = offset
        offset += len(line)
        if number == 1 and line.startswith(codecs.BOM_UTF8):
            line, start = line[len(codecs.BOM_UTF8) :], start + len(codecs.BOM_UTF8)
        yield number, start, line


def _decode(line: bytes, number: int, offset: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadUtf8(number, offset + error.start) from None


def _jsonl_rows(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    for number, offset, line in _byte_lines(stream):
        try:
            text = _decode(line, number, offset)
        except BadUtf8 as error:
            yield number, error
            continue
        if not text.strip(JSON_WHITESPACE):
            continue
        try:
            yield number, _storable(json_limits.loads(text), text)
        except json.JSONDecodeError as error:
            yield number, RowError(f"is not valid JSON ({error.msg} at column {error.colno})")
        except json_limits.NestedTooDeeply as error:
            yield number, RowError(f"is not accepted: {error}")


def _csv_text_lines(stream: IO[bytes]) -> Iterator[str]:
    """The file's text cut where csv expects lines; raises ``BadUtf8`` at the first bad line."""
    number = 0
    for _, offset, line in _byte_lines(stream):
        pieces = CSV_LINE.findall(line) if b"\r" in line else (line,)
        for piece in pieces:
            number += 1
            yield _decode(piece, number, offset)
            offset += len(piece)


def _csv_rows(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(_csv_text_lines(stream))
    try:
        header = reader.fieldnames or []
    except BadUtf8 as error:
        yield error.line, error
        return
    if "prompt" not in header:
        yield 1, RowError("the header needs a 'prompt' column (and response_1..response_K)")
        return
    response_columns = sorted(
        (c for c in header if c.startswith("response_") and c.removeprefix("response_").isdigit()),
        key=lambda c: int(c.removeprefix("response_")),
    )
    try:
        for record in reader:
            line = reader.line_num
            if None in record:
                yield line, RowError("has more fields than the header")
                continue
            # Every value of the row comes from these cells, as text or as JSON.
            yield (
                line,
                _storable(_csv_record_to_row(record, response_columns), "\n".join(filter(None, record.values()))),
            )
    except BadUtf8 as error:
        # csv cannot go on past a line it never saw, so this is the last row reported.
        yield error.line, error
    except csv.Error as error:
        yield reader.line_num, RowError(f"is not valid CSV ({error})")


def _csv_json_cell(record: dict[str, str], column: str) -> Any:
    raw = (record.get(column) or "").strip()
    if not raw:
        return None
    try:
        return json_limits.loads(raw)
    except json.JSONDecodeError:
        return RowError(f"column {column!r} must hold JSON")
    except json_limits.NestedTooDeeply as error:
        return RowError(f"column {column!r}: {error}")


def _csv_record_to_row(record: dict[str, str], response_columns: list[str]) -> dict[str, Any] | RowError:
    row: dict[str, Any] = {"prompt": record.get("prompt", "")}
    if record.get("id"):
        row["id"] = record["id"]
    prompt_messages = _csv_json_cell(record, "messages")
    if isinstance(prompt_messages, RowError):
        return prompt_messages
    if prompt_messages is not None:
        row["prompt"] = prompt_messages
    responses = []
    for column in response_columns:
        text = record.get(column) or ""
        if not text:
            continue
        number = column.removeprefix("response_")
        response: dict[str, Any] = {"text": text}
        if record.get(f"model_{number}"):
            response["model"] = record[f"model_{number}"]
        responses.append(response)
    if responses:
        row["responses"] = responses
    for column in ("meta", "gold"):
        value = _csv_json_cell(record, column)
        if isinstance(value, RowError):
            return value
        if value is not None:
            row[column] = value
    return row


def _parquet_rows(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(stream)
    except (pa.ArrowInvalid, OSError) as error:
        yield 1, RowError(f"is not a Parquet file ({error})")
        return
    if "prompt" not in parquet.schema_arrow.names:
        yield 1, RowError("the file needs a 'prompt' column")
        return
    row_number = 0
    for batch in parquet.iter_batches(batch_size=BATCH_SIZE):
        for record in batch.to_pylist():
            row_number += 1
            yield row_number, _storable({k: v for k, v in record.items() if v is not None}, None)


READERS = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows}


# --- validation ----------------------------------------------------------------------------


NUL_REASON = "contains a NUL character (\\u0000), which cannot be stored"


def _unstorable_at(value: Any, path: str) -> tuple[str, str] | None:
    """(path, reason) of the first value the JSON columns cannot hold, or None.

    PostgreSQL refuses NUL characters in text and NaN or infinite numbers in JSON (both can
    be read from a JSONL or Parquet file); a Parquet file can also hold values JSON has no
    type for (dates, bytes).
    """
    if isinstance(value, str):
        return (path, NUL_REASON) if "\x00" in value else None
    if value is None or isinstance(value, int):  # bool is an int
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, "is not a finite number")
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = ((f"[{index}]", item) for index, item in enumerate(value))
    else:
        return (path, f"is not a JSON value (it is a {type(value).__name__})")
    for key, item in items:
        key = str(key)
        inner = f"{path}{key}" if key.startswith("[") else f"{path}.{key}" if path else key
        if "\x00" in key:
            return (path, f"has a field name that {NUL_REASON}") if path else ("a field name", NUL_REASON)
        found = _unstorable_at(item, inner)
        if found is not None:
            return found
    return None


STRICT_JSON = json.JSONEncoder(allow_nan=False)


def _storable(row: Any, source_text: str | None) -> Any:
    """``row``, or a ``RowError`` naming the first value in it that the database cannot hold.

    Nearly every row passes, so the full walk in Python runs only when it may find something:
    a NUL or a non-finite number always shows in the text the row was parsed from (JSON
    writes them \\u0000, NaN, Infinity), and without that text, serialising in C first is
    several times faster than the walk. A prompt that merely mentions "NaN" costs a walk.
    """
    if not isinstance(row, dict):
        return row  # parse_row refuses it
    if source_text is not None:
        if not ("\\u0000" in source_text or "\x00" in source_text or "NaN" in source_text
                or "Infinity" in source_text):  # fmt: skip
            return row
        encodes = True
    else:
        encodes = _encodes_without_nul(row)
        if encodes:
            return row
    problem = _unstorable_at(row, "")
    if problem is not None:
        return RowError(f"{problem[0]} {problem[1]}")
    return row if encodes else RowError("cannot be stored as JSON")


def _encodes_without_nul(row: dict[str, Any]) -> bool:
    try:
        return "\\u0000" not in STRICT_JSON.encode(row)
    except (ValueError, TypeError):
        return False  # a NaN, or a value JSON has no type for: the caller's walk names it


def _check_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RowError(f"{what} must be non-empty text")
    if len(value) > MAX_TEXT_CHARS:
        raise RowError(f"{what} is longer than {MAX_TEXT_CHARS} characters")
    return value


def _check_prompt(value: Any) -> str | list[dict[str, str]]:
    if isinstance(value, str):
        return _check_text(value, "prompt")
    if isinstance(value, list) and value:
        messages = []
        for index, message in enumerate(value):
            if not isinstance(message, dict) or set(message) - {"role", "content"}:
                raise RowError(f"prompt[{index}] must be a {{role, content}} message")
            if message.get("role") not in MESSAGE_ROLES:
                raise RowError(f"prompt[{index}].role must be one of {', '.join(MESSAGE_ROLES)}")
            messages.append({"role": message["role"], "content": _check_text(message.get("content"), "message")})
        return messages
    raise RowError("prompt must be text or a non-empty list of {role, content} messages")


def _check_response(value: Any, index: int) -> dict[str, Any]:
    if isinstance(value, str):
        return {"text": _check_text(value, f"responses[{index}]"), "model": "", "meta": {}}
    if isinstance(value, dict):
        unknown = set(value) - {"text", "model", "meta"}
        if unknown:
            raise RowError(f"responses[{index}] has unknown field(s): {', '.join(sorted(unknown))}")
        model = value.get("model") or ""
        if not isinstance(model, str) or len(model) > 200:
            raise RowError(f"responses[{index}].model must be text of at most 200 characters")
        meta = value.get("meta") or {}
        if not isinstance(meta, dict):
            raise RowError(f"responses[{index}].meta must be an object")
        return {"text": _check_text(value.get("text"), f"responses[{index}].text"), "model": model, "meta": meta}
    raise RowError(f"responses[{index}] must be text or an object with text, model and meta")


def _check_gold(value: Any, response_count: int) -> dict[str, Any]:
    if not response_count:
        raise RowError("gold needs responses to refer to")
    if isinstance(value, dict) and set(value) == {"preferred"}:
        preferred = value["preferred"]
        if not isinstance(preferred, int) or isinstance(preferred, bool) or not 0 <= preferred < response_count:
            raise RowError(f"gold.preferred must be a response index from 0 to {response_count - 1}")
        return {"preferred": preferred}
    if isinstance(value, dict) and set(value) == {"ranking"}:
        ranking = value["ranking"]
        if not isinstance(ranking, list) or sorted(ranking) != list(range(response_count)):
            raise RowError(f"gold.ranking must order every response index 0..{response_count - 1} once, best first")
        return {"ranking": ranking}
    raise RowError('gold must be {"preferred": index} or {"ranking": [indexes, best first]}')


# Characters that show as nothing, so that two ids a reviewer or a manager cannot tell apart
# would be two tasks: zero-width spaces and joiners, bidi marks, embeddings and isolates, word
# joiner and invisible operators, the byte order mark, soft hyphen, Mongolian vowel separator.
INVISIBLE_IN_IDS = dict.fromkeys(
    [
        0x00AD, 0x180E, 0xFEFF,
        *range(0x200B, 0x200F + 1), *range(0x202A, 0x202E + 1),
        *range(0x2060, 0x2064 + 1), *range(0x2066, 0x2069 + 1),
    ]
)  # fmt: skip
MAX_ID_CHARS = 255


def normalise_id(value: str) -> str:
    """The id as stored and compared: invisible characters removed, Unicode NFC, no surrounding
    whitespace. NFC comes after the removal, which can bring a letter and its accent together."""
    return unicodedata.normalize("NFC", value.translate(INVISIBLE_IN_IDS)).strip()


def _check_id(value: Any) -> str:
    if value is None or value == "":
        return ""  # no id: the row is never a duplicate
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise RowError(f"id must be text (or an integer) of at most {MAX_ID_CHARS} characters")
    external_id = normalise_id(value)
    if not external_id:
        raise RowError("id is empty once invisible characters and surrounding whitespace are removed")
    if len(external_id) > MAX_ID_CHARS:
        raise RowError(f"id must be text (or an integer) of at most {MAX_ID_CHARS} characters")
    return external_id


def parse_row(raw: Any, schema: QuestionSchema) -> TaskRow:
    if isinstance(raw, RowError):
        raise raw
    if not isinstance(raw, dict):
        raise RowError("must be a JSON object")
    unknown = set(raw) - {"id", "prompt", "responses", "meta", "gold"}
    if unknown:
        raise RowError(f"unknown field(s): {', '.join(sorted(unknown))}")
    external_id = _check_id(raw.get("id"))
    raw_responses = raw.get("responses")
    raw_responses = [] if raw_responses is None else raw_responses
    if not isinstance(raw_responses, list):
        raise RowError("responses must be a list")
    if len(raw_responses) > MAX_RESPONSES:
        raise RowError(f"at most {MAX_RESPONSES} responses per task")
    responses = [_check_response(value, index) for index, value in enumerate(raw_responses)]
    if responses:
        problem = schema.check_response_count(len(responses))
        if problem:
            raise RowError(problem)
    meta = raw.get("meta")
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise RowError("meta must be an object")
    gold = raw.get("gold")
    return TaskRow(
        external_id=external_id,
        prompt=_check_prompt(raw.get("prompt")),
        responses=responses,
        meta=meta,
        gold=_check_gold(gold, len(responses)) if gold is not None else None,
    )


def _campaign_ids(campaign: Campaign) -> set[str]:
    # Normalised as well: ids stored before normalisation still match the ones of a file.
    return {
        normalise_id(external_id)
        for external_id in campaign.tasks.exclude(external_id="").values_list("external_id", flat=True)
    }


ProgressCallback = Callable[[int, int], None]


def _reporting_progress(
    rows: Iterator[tuple[int, Any]], result: ImportResult, stream: IO[bytes], on_progress: ProgressCallback
) -> Iterator[tuple[int, Any]]:
    for item in rows:
        yield item
        # Resumed when the import asks for the next row, so this one has been checked (and
        # written with its batch), and the stream has not yet been read past it.
        if result.rows % BATCH_SIZE == 0:
            on_progress(result.rows, stream.tell())


def tasks_import(
    *,
    campaign: Campaign,
    stream: IO[bytes],
    file_format: str,
    size: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import every row of ``stream`` into ``campaign``, or nothing (raises ``ImportRejected``).

    ``on_progress(rows_done, bytes_read)``, if given, is called every ``BATCH_SIZE`` rows and
    once more when the import has committed; ``bytes_read`` comes from ``stream.tell()``. The
    calls before the last run inside the import's transaction: a caller recording progress in
    the database must do it on another connection for others to see it before the end.
    """
    if campaign.status == CampaignStatus.CLOSED:
        raise ImportRejected("The campaign is closed; it takes no more tasks.")
    if file_format not in FORMATS:
        raise ImportRejected(f"Unknown format {file_format!r}: use one of {', '.join(FORMATS)}.")
    limit = max_import_bytes()
    if size is not None and size > limit:
        raise ImportRejected(
            f"The file is {size / 2**20:.1f} MiB; imports are limited to {limit / 2**20:.0f} MiB. "
            "Split it into several files."
        )
    schema = campaign.schema
    campaign_ids = _campaign_ids(campaign)
    first_line_of_id: dict[str, int] = {}
    result = ImportResult()
    row_errors: list[tuple[int, str]] = []
    batch: list[TaskRow] = []
    write_batch = batch_writer()
    try:
        with transaction.atomic():
            rows = READERS[file_format](stream)
            if on_progress is not None:
                rows = _reporting_progress(rows, result, stream, on_progress)
            for line, raw in rows:
                result.rows += 1
                try:
                    row = parse_row(raw, schema)
                    if row.external_id:
                        # A file naming one id twice contradicts itself (which row is the task?),
                        # unlike a file naming ids the campaign already has (a re-run, skipped).
                        first_line = first_line_of_id.setdefault(row.external_id, line)
                        if first_line != line:
                            raise RowError(f"id {row.external_id!r} repeats line {first_line}")
                except RowError as error:
                    row_errors.append((line, str(error)))
                    if len(row_errors) >= MAX_REPORTED_ERRORS:
                        break
                    continue
                if row.external_id in campaign_ids:
                    result.skipped_duplicates += 1
                    continue
                if row_errors:
                    continue  # keep validating to report more errors, but write nothing more
                batch.append(row)
                result.created += 1
                result.prompt_only += not row.responses
                if len(batch) >= BATCH_SIZE:
                    write_batch(campaign.pk, batch)
                    batch = []
            if row_errors:
                raise ImportRejected(_rejection_message(row_errors), row_errors)
            if batch:
                write_batch(campaign.pk, batch)
            if result.created == 0 and result.skipped_duplicates == 0:
                raise ImportRejected("The file has no rows.")
    except IntegrityError:
        raise ImportRejected(
            "Another import added some of these ids at the same time; nothing was written. Try again."
        ) from None
    if on_progress is not None:
        on_progress(result.rows, stream.tell())
    return result


def _rejection_message(row_errors: list[tuple[int, str]]) -> str:
    first_line, first_reason = row_errors[0]
    more = f" ({len(row_errors)} bad rows shown)" if len(row_errors) > 1 else ""
    return f"Line {first_line}: {first_reason}. Nothing was imported{more}."


def tasks_import_file(
    *, campaign: Campaign, path: Path, file_format: str | None = None, on_progress: ProgressCallback | None = None
) -> ImportResult:
    """Import from a file on disk; the format follows the file name unless given."""
    if not path.is_file():
        raise ImportRejected(f"No file at {path}.")
    with path.open("rb") as stream:
        return tasks_import(
            campaign=campaign,
            stream=stream,
            file_format=file_format or format_from_name(path.name),
            size=path.stat().st_size,
            on_progress=on_progress,
        )
