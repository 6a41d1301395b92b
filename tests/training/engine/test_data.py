"""The engine's data reader: a damaged file is a DataError saying which file and line, never another
exception (the worker reports a DataError as the run's error; anything else is a crash)."""

from __future__ import annotations

import pytest

from training.engine import data


def test_a_non_utf8_jsonl_line_names_its_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "caf\xe9"}\n')
    assert data.dataset_columns(str(path)) == {"text"}
    with pytest.raises(data.DataError, match=r"rows\.jsonl line 2: not UTF-8 text"):
        data.load_records(str(path))


def test_a_non_utf8_text_file_is_a_data_error(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(data.DataError, match=r"corpus\.txt is not UTF-8 text \(byte 4\)"):
        data.load_rows(str(path))


def test_a_damaged_parquet_file_is_a_data_error(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"nothing like parquet")
    for read in (data.dataset_columns, data.load_rows):
        with pytest.raises(data.DataError, match="not a readable Parquet file"):
            read(str(path))


def test_a_damaged_saved_dataset_is_a_data_error(tmp_path):
    directory = tmp_path / "hf"
    directory.mkdir()
    (directory / "dataset_info.json").write_text("{}")
    (directory / "state.json").write_text("{broken")
    for read in (data.dataset_columns, data.load_rows):
        with pytest.raises(data.DataError, match="not a readable saved HF dataset"):
            read(str(directory))


def test_deeply_nested_json_is_a_data_error(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(data.DataError, match="line 1"):
        data.dataset_columns(str(path))


def test_a_corpus_split_across_a_multibyte_character_still_decodes(tmp_path):
    path = tmp_path / "big.txt"
    # 2 MiB of two-byte characters puts one across the 1 MiB read boundary when offset by one byte.
    path.write_text("x" + "é" * 2**20, encoding="utf-8")
    data.check_corpus(str(path), text_field="text")
    path.write_bytes(path.read_bytes()[:-1])  # now it ends inside a character
    with pytest.raises(data.DataError, match="ends inside a character"):
        data.check_corpus(str(path), text_field="text")
