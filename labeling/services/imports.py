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
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, connections, models, router, transaction
from django.utils import timezone

from labeling.errors import LabelingError
from labeling.models import Campaign, CampaignStatus, Response, Task
from labeling.schema import QuestionSchema
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


@dataclass
class TaskRow:
    external_id: str
    prompt: str | list[dict[str, str]]
    responses: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    gold: dict[str, Any] | None = None


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
            yield number, json_limits.loads(text)
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
            yield line, _csv_record_to_row(record, response_columns)
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
            yield row_number, {k: v for k, v in record.items() if v is not None}


READERS = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows}


# --- validation ----------------------------------------------------------------------------


def _nul_character_at(value: Any, path: str) -> str | None:
    """The path of the first text (or key) in ``value`` holding a NUL character, which databases refuse."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((f"[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for key, item in items:
        key = str(key)
        inner = f"{path}{key}" if key.startswith("[") else f"{path}.{key}" if path else key
        if "\x00" in key:
            return inner
        found = _nul_character_at(item, inner)
        if found is not None:
            return found
    return None


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
    nul = _nul_character_at(raw, "")
    if nul is not None:
        raise RowError(f"{nul or 'a field name'} contains a NUL character (\\u0000), which cannot be stored")
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


# --- writing -------------------------------------------------------------------------------


def _insert_rows(model: type[models.Model], names: tuple[str, ...], rows: list[tuple], *, returning: bool) -> list[int]:
    """Multi-row INSERT of already-checked rows, without building a model instance per row.

    The ORM's ``bulk_create`` spends most of a large import compiling one model instance
    per row; this writes the same SQL directly. Values go through each field's
    ``get_db_prep_save`` so they are stored exactly as the ORM would store them.
    """
    # The connection itself, not the ``django.db.connection`` proxy: the proxy looks it up
    # again on every attribute access, which adds up over hundreds of thousands of values.
    db = connections[router.db_for_write(model)]
    fields = [model._meta.get_field(name) for name in names]
    columns = [field.column for field in fields]
    quote = db.ops.quote_name
    prepared = [
        tuple(field.get_db_prep_save(value, db) for field, value in zip(fields, row, strict=True)) for row in rows
    ]
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    # Identifiers come from the model and are quoted; every value is a parameter.
    head = f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) VALUES "  # noqa: S608
    per_statement = max(1, (db.features.max_query_params or 10_000) // len(columns))
    ids: list[int] = []
    with db.cursor() as cursor:
        for start in range(0, len(prepared), per_statement):
            chunk = prepared[start : start + per_statement]
            sql = head + ", ".join([row_sql] * len(chunk))
            params = [value for row in chunk for value in row]
            if returning:
                # Rows come back in insertion order on PostgreSQL and SQLite >= 3.35, which
                # Django's own bulk_create relies on as well.
                cursor.execute(sql + f" RETURNING {quote(model._meta.pk.column)}", params)
                ids.extend(row[0] for row in cursor.fetchall())
            else:
                cursor.execute(sql, params)
    return ids


TASK_COLUMNS = (
    "campaign", "external_id", "prompt", "meta", "gold", "is_gold",
    "response_count", "slots_taken", "judgement_count", "created_at",
)  # fmt: skip
RESPONSE_COLUMNS = ("task", "position", "text", "model_name", "meta")


def _write_batch(campaign: Campaign, rows: list[TaskRow]) -> None:
    now = timezone.now()
    task_ids = _insert_rows(
        Task,
        TASK_COLUMNS,
        [
            (
                campaign.pk,
                row.external_id,
                row.prompt,
                row.meta,
                row.gold,
                row.gold is not None,
                len(row.responses),
                0,
                0,
                now,
            )
            for row in rows
        ],
        returning=True,
    )
    _insert_rows(
        Response,
        RESPONSE_COLUMNS,
        [
            (task_id, position, r["text"], r["model"], r["meta"])
            for task_id, row in zip(task_ids, rows, strict=True)
            for position, r in enumerate(row.responses)
        ],
        returning=False,
    )


def tasks_import(*, campaign: Campaign, stream: IO[bytes], file_format: str, size: int | None = None) -> ImportResult:
    """Import every row of ``stream`` into ``campaign``, or nothing (raises ``ImportRejected``)."""
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
    # Normalised as well: ids stored before normalisation still match the ones of this file.
    campaign_ids = {
        normalise_id(external_id)
        for external_id in campaign.tasks.exclude(external_id="").values_list("external_id", flat=True)
    }
    first_line_of_id: dict[str, int] = {}
    result = ImportResult()
    row_errors: list[tuple[int, str]] = []
    batch: list[TaskRow] = []
    try:
        with transaction.atomic():
            for line, raw in READERS[file_format](stream):
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
                    _write_batch(campaign, batch)
                    batch = []
            if row_errors:
                raise ImportRejected(_rejection_message(row_errors), row_errors)
            if batch:
                _write_batch(campaign, batch)
            if result.created == 0 and result.skipped_duplicates == 0:
                raise ImportRejected("The file has no rows.")
    except IntegrityError:
        raise ImportRejected(
            "Another import added some of these ids at the same time; nothing was written. Try again."
        ) from None
    return result


def _rejection_message(row_errors: list[tuple[int, str]]) -> str:
    first_line, first_reason = row_errors[0]
    more = f" ({len(row_errors)} bad rows shown)" if len(row_errors) > 1 else ""
    return f"Line {first_line}: {first_reason}. Nothing was imported{more}."


def tasks_import_file(*, campaign: Campaign, path: Path, file_format: str | None = None) -> ImportResult:
    """Import from a file on disk; the format follows the file name unless given."""
    if not path.is_file():
        raise ImportRejected(f"No file at {path}.")
    with path.open("rb") as stream:
        return tasks_import(
            campaign=campaign,
            stream=stream,
            file_format=file_format or format_from_name(path.name),
            size=path.stat().st_size,
        )
