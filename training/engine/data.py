"""Datasets from local files: JSONL, Parquet, a saved HF dataset directory, or plain text files."""

from __future__ import annotations

import json
import random
from collections import Counter
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
        import datasets

        return set(_train_split(datasets.load_from_disk(str(source))).column_names)
    if source.suffix == ".parquet":
        import pyarrow.parquet as pq

        return set(pq.read_schema(source).names)
    if source.suffix in (".jsonl", ".json"):
        with source.open() as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    return set(_parse_json_line(line, path, number))
        raise DataError(f"{path} is empty")
    raise DataError(f"{path}: unsupported format (use .jsonl, .parquet, .txt or a saved HF dataset directory)")


def load_rows(path: str) -> datasets.Dataset:
    """The whole dataset in memory, with no cache files written (text sources give one `text` row per file)."""
    import datasets

    source = Path(path)
    if is_text_source(path):
        files = [source] if source.is_file() else sorted(source.glob("*.txt"))
        return datasets.Dataset.from_dict({"text": [file.read_text() for file in files]})
    if source.is_dir():
        return _train_split(datasets.load_from_disk(str(source)))
    if source.suffix == ".parquet":
        import pyarrow.parquet as pq

        return datasets.Dataset(pq.read_table(source))
    return datasets.Dataset.from_list(load_records(path))


def load_records(path: str) -> list[dict]:
    """Rows as plain dicts. Unlike a Dataset, a JSONL file may mix text prompts and message-list prompts."""
    source = Path(path)
    if source.suffix not in (".jsonl", ".json"):
        return load_rows(path).to_list()
    rows = []
    with source.open() as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                rows.append(_parse_json_line(line, path, number))
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
    if not isinstance(row, dict):
        raise DataError(f"{path} line {number}: each line must be a JSON object")
    return row


def _is_hf_dir(directory: Path) -> bool:
    return (directory / "dataset_info.json").is_file() or (directory / "dataset_dict.json").is_file()


def _saved_split(path: str, name: str) -> datasets.Dataset | None:
    """A named split of a saved HF DatasetDict (the platform's exports carry train and test)."""
    import datasets

    source = Path(path)
    if not (source.is_dir() and (source / "dataset_dict.json").is_file()):
        return None
    loaded = datasets.load_from_disk(str(source))
    return loaded.get(name)


def _train_split(loaded: datasets.Dataset | datasets.DatasetDict) -> datasets.Dataset:
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        return loaded["train"] if "train" in loaded else next(iter(loaded.values()))
    return loaded
