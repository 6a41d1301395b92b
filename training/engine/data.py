"""Datasets from local files: JSONL, Parquet, a saved HF dataset directory, or plain text files."""

from __future__ import annotations

import codecs
import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where rows are read: spec checks (also run by the web app) only read columns
    import datasets


class DataError(ValueError):
    """A dataset file that cannot be read; the message says where."""


def is_text_source(path: str) -> bool:
    """A .txt file, or a directory of .txt files (and no saved HF dataset)."""
    source = Path(path)
    if source.is_file():
        return source.suffix == ".txt"
    return source.is_dir() and not _is_hf_dir(source) and any(source.glob("*.txt"))


def dataset_columns(path: str) -> set[str]:
    """Column names, read without loading the rows (only the first JSONL line is parsed)."""
    source = Path(path)
    if not source.exists():
        raise DataError(f"{path} does not exist")
    if is_text_source(path):
        return {"text"}
    if source.is_dir():
        if not _is_hf_dir(source):
            raise DataError(f"{path} is not a saved HF dataset (no dataset_info.json or dataset_dict.json)")
        return set(_train_split(_load_from_disk(source)).column_names)
    if source.suffix == ".parquet":
        return set(_parquet_schema(source).names)
    if source.suffix in (".jsonl", ".json"):
        for _number, row in _json_lines(source):
            return set(row)
        raise DataError(f"{path} is empty")
    raise DataError(f"{path}: unsupported format (use .jsonl, .parquet, .txt or a saved HF dataset directory)")


def check_corpus(path: str, *, text_field: str) -> None:
    """A text corpus (a .txt file or directory, or rows with ``text_field``) reads to the end.

    Every .txt file and every JSONL line is decoded as UTF-8 (a JSONL line must also be a JSON
    object whose ``text_field``, when present, is a string); a Parquet file's footer and schema and a
    saved HF dataset's files are opened. Raises ``DataError`` saying which file, line or column is
    at fault, and never quotes what the file holds.
    """
    source = Path(path)
    if not source.exists():
        raise DataError(f"{path} does not exist")
    if is_text_source(path):
        files = [source] if source.is_file() else sorted(source.glob("*.txt"))
        if not any(_utf8_text_has_words(file) for file in files):
            raise DataError(f"{path} holds no text")
        return
    columns = dataset_columns(path)
    if text_field not in columns:
        raise DataError(
            f"{path} needs columns {{{text_field}}}; it has {sorted(columns)} (set text_field to its text column)"
        )
    if source.suffix in (".jsonl", ".json") and source.is_file():
        for number, row in _json_lines(source):
            if row.get(text_field) is not None and not isinstance(row[text_field], str):
                raise DataError(f"{path} line {number}: {text_field} must be a string")
    elif source.suffix == ".parquet" and source.is_file():
        import pyarrow as pa

        kind = _parquet_schema(source).field(text_field).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise DataError(f"{path}: column {text_field} holds {kind}, not text")


def load_rows(path: str) -> datasets.Dataset:
    """The whole dataset in memory, with no cache files written (text sources give one `text` row per file)."""
    import datasets

    source = Path(path)
    if is_text_source(path):
        files = [source] if source.is_file() else sorted(source.glob("*.txt"))
        return datasets.Dataset.from_dict({"text": [_utf8_text(file) for file in files]})
    if source.is_dir():
        return _train_split(_load_from_disk(source))
    if source.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return datasets.Dataset(pq.read_table(source))
        except (pa.ArrowException, OSError) as error:
            raise DataError(f"{path} is not a readable Parquet file ({error})") from None
    return datasets.Dataset.from_list(load_records(path))


def load_records(path: str) -> list[dict]:
    """Rows as plain dicts. Unlike a Dataset, a JSONL file may mix text prompts and message-list prompts."""
    source = Path(path)
    if source.suffix not in (".jsonl", ".json"):
        return load_rows(path).to_list()
    rows = [row for _number, row in _json_lines(source)]
    if not rows:
        raise DataError(f"{path} is empty")
    return rows


def train_eval_split(
    train_path: str, eval_path: str | None, eval_fraction: float, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """Training rows and held-out rows: ``eval_path`` if given, else a seeded ``eval_fraction`` of the training file.

    Rows that share a ``group_id`` (pairs from one prompt) stay on the same side, so the held-out
    set never contains a prompt the model trained on.
    """
    train = load_rows(train_path)
    if eval_path is not None:
        return train, load_rows(eval_path)
    saved_test_split = _saved_split(train_path, "test")
    if saved_test_split is not None:
        return train, saved_test_split
    held_out = round(len(train) * eval_fraction)
    if held_out == 0:
        return train, None
    if "group_id" not in train.column_names:
        split = train.train_test_split(test_size=held_out, seed=seed, shuffle=True)
        return split["train"], split["test"]
    counts = Counter(train["group_id"])
    groups = sorted(counts, key=str)
    random.Random(seed).shuffle(groups)  # noqa: S311 - a data split, not a secret
    eval_groups, count = set(), 0
    for group in groups:
        if count >= held_out:
            break
        eval_groups.add(group)
        count += counts[group]
    in_eval = [g in eval_groups for g in train["group_id"]]
    eval_rows = [i for i, flag in enumerate(in_eval) if flag]
    train_rows = [i for i, flag in enumerate(in_eval) if not flag]
    return train.select(train_rows), train.select(eval_rows)


def _parse_json_line(line: str, path: str, number: int) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{path} line {number}: not valid JSON ({error.msg})") from error
    except RecursionError:
        raise DataError(f"{path} line {number}: JSON nested too deeply") from None
    if not isinstance(row, dict):
        raise DataError(f"{path} line {number}: each line must be a JSON object")
    return row


def _json_lines(source: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row) of each non-blank line of a JSONL file, each line decoded as UTF-8."""
    with source.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                where = f"byte {error.start + 1} of the line"
                raise DataError(f"{source} line {number}: not UTF-8 text ({where})") from None
            if line.strip():
                yield number, _parse_json_line(line, str(source), number)


def _utf8_text(file: Path) -> str:
    try:
        return file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{file} is not UTF-8 text (byte {error.start + 1})") from None


def _utf8_text_has_words(file: Path) -> bool:
    """Whether a text file holds anything but whitespace (decoded in pieces: a corpus is never whole in memory)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, has_words = 0, False
    with file.open("rb") as handle:
        while chunk := handle.read(2**20):
            try:
                has_words = bool(decoder.decode(chunk).strip()) or has_words
            except UnicodeDecodeError as error:
                raise DataError(f"{file} is not UTF-8 text (byte {offset + error.start + 1})") from None
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataError(f"{file} is not UTF-8 text (it ends inside a character)") from None
    return has_words


def _load_from_disk(source: Path) -> datasets.Dataset | datasets.DatasetDict:
    import datasets

    try:
        return datasets.load_from_disk(str(source))
    except (OSError, ValueError, KeyError, TypeError) as error:
        # datasets reports a damaged directory by whatever its reading meets first (a missing
        # arrow file, bad JSON in state.json, an arrow file cut short).
        raise DataError(f"{source} is not a readable saved HF dataset ({type(error).__name__}: {error})") from None


def _parquet_schema(source: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(source)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{source} is not a readable Parquet file ({error})") from None


def _is_hf_dir(directory: Path) -> bool:
    return (directory / "dataset_info.json").is_file() or (directory / "dataset_dict.json").is_file()


def _saved_split(path: str, name: str) -> datasets.Dataset | None:
    """A named split of a saved HF DatasetDict (the platform's exports carry train and test)."""
    source = Path(path)
    if not (source.is_dir() and (source / "dataset_dict.json").is_file()):
        return None
    loaded = _load_from_disk(source)
    return loaded.get(name)


def _train_split(loaded: datasets.Dataset | datasets.DatasetDict) -> datasets.Dataset:
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        return loaded["train"] if "train" in loaded else next(iter(loaded.values()))
    return loaded
