"""What each stage trains on, made from a dataset snapshot's rows. Pure functions: no ORM.

The rule, by what the stage trains on (``trains_on`` in the engine's table of stages):

- demonstrations (SFT): an SFT snapshot's rows as they are; a preference snapshot's *chosen*
  responses (prompt/chosen -> prompt/completion); a KTO snapshot's desirable completions.
- preference pairs (reward, DPO): prompt/chosen/rejected/margin; only a preference snapshot has them.
- labelled completions (KTO): a KTO snapshot's prompt/completion/label rows as they are; a preference
  snapshot's pairs split in two (chosen desirable, rejected not), as TRL unpairs them. An SFT snapshot
  has no undesirable examples and cannot feed it.
- prompts (PPO, RLOO, GRPO): the snapshot's distinct prompts.

Rows keep ``group_id`` so the engine's held-out split keeps a prompt's rows together. The snapshot's
``split`` column decides train and test: test rows become the engine's ``eval_dataset``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from labeling.datasets import read_rows
from training.engine.stages import STAGES


class StageDataError(ValueError):
    """The snapshot cannot feed this stage; the message says why, fit to show as it is."""


def check_snapshot_kind(*, stage: str, kind: str, dataset_name: str) -> None:
    """Stage requirements that the snapshot's kind alone decides."""
    if STAGES[stage].trains_on == "preference_pairs" and kind != "preference":
        raise StageDataError(
            f"The {stage} stage trains on preference pairs (chosen/rejected); "
            f"{dataset_name!r} is a {kind} snapshot without pairs. Build a preference snapshot."
        )
    if STAGES[stage].trains_on == "labelled_completions" and kind not in ("kto", "preference"):
        raise StageDataError(
            f"The {stage} stage trains on completions labelled desirable or undesirable; {dataset_name!r} is a "
            f"{kind} snapshot, whose completions are all desirable. Build a KTO or a preference snapshot."
        )


def stage_rows(*, stage: str, kind: str, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The rows ``stage`` trains on, from a snapshot of ``kind``; each keeps its ``split``."""
    check_snapshot_kind(stage=stage, kind=kind, dataset_name="the snapshot")
    if STAGES[stage].trains_on == "prompts":
        yield from _distinct_prompts(rows)
        return
    for row in rows:
        for converted in _convert(stage, kind, row):
            yield {**converted, "group_id": row.get("group_id", row.get("task_id", "")), "split": row.get("split")}


def _convert(stage: str, kind: str, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The stage's rows made from one snapshot row (none, one, or a pair's two halves)."""
    trains_on = STAGES[stage].trains_on
    if trains_on == "labelled_completions":
        if kind == "preference":
            return [
                {"prompt": row["prompt"], "completion": row["chosen"], "label": True},
                {"prompt": row["prompt"], "completion": row["rejected"], "label": False},
            ]
        return [{"prompt": row["prompt"], "completion": row["completion"], "label": bool(row["label"])}]
    converted = _convert_one(stage, kind, row)
    return [] if converted is None else [converted]


def _convert_one(stage: str, kind: str, row: dict[str, Any]) -> dict[str, Any] | None:
    trains_on = STAGES[stage].trains_on
    if trains_on == "preference_pairs":
        return {
            "prompt": row["prompt"],
            "chosen": row["chosen"],
            "rejected": row["rejected"],
            "margin": float(row.get("margin") or 0.0),
        }
    if trains_on == "demonstrations":
        if kind == "preference":
            return {"prompt": row["prompt"], "completion": row["chosen"]}
        if kind == "kto" and not row.get("label"):
            return None
        if "messages" in row:
            return {"messages": row["messages"]}
        return {"prompt": row["prompt"], "completion": row["completion"], "source": row.get("source", "")}
    raise StageDataError(f"The {stage} stage does not train on a dataset snapshot.")


def _distinct_prompts(rows: Iterable[dict[str, Any]], *, with_task_id: bool = False) -> Iterator[dict[str, Any]]:
    """Each prompt once, with its group (and, ``with_task_id``, the first row's task: an evaluation's
    outcomes are joined back to the task, its campaign and meta, by it)."""
    seen: set[str] = set()
    for row in rows:
        prompt = row.get("prompt")
        if prompt is None and "messages" in row:
            prompt = row["messages"][:-1]
        key = json.dumps(prompt, sort_keys=True)
        if prompt and key not in seen:
            seen.add(key)
            distinct = {"prompt": prompt, "group_id": row.get("group_id", ""), "split": row.get("split")}
            if with_task_id:
                distinct["task_id"] = row.get("task_id", "")
            yield distinct


def write_stage_files(
    rows: Iterable[dict[str, Any]], directory: Path, *, limit: int | None = None
) -> tuple[Path, Path | None]:
    """Write ``train.jsonl`` and, when the snapshot holds test rows, ``eval.jsonl``; returns both paths.

    With ``limit``, at most that many rows per file (enough to check columns before launching).
    """
    directory.mkdir(parents=True, exist_ok=True)
    train_path, eval_path = directory / "train.jsonl", directory / "eval.jsonl"
    counts = {"train": 0, "test": 0}
    with train_path.open("w", encoding="utf-8") as train, eval_path.open("w", encoding="utf-8") as held_out:
        for row in rows:
            split = "test" if row.pop("split", None) == "test" else "train"
            if limit is not None and counts[split] >= limit:
                if min(counts.values()) >= limit:
                    break  # both files are full: the rest of the snapshot changes nothing
                continue
            counts[split] += 1
            (held_out if split == "test" else train).write(json.dumps(row, ensure_ascii=False) + "\n")
    if counts["train"] == 0:
        raise StageDataError("The snapshot has no training rows for this stage.")
    if counts["test"] == 0:
        eval_path.unlink()
        return train_path, None
    return train_path, eval_path


def export_stage_files(
    *, stage: str, kind: str, snapshot: Path, directory: Path, limit: int | None = None
) -> tuple[str, str | None]:
    """A stage's training (and held-out) files from a snapshot file, as the paths a spec names."""
    rows = stage_rows(stage=stage, kind=kind, rows=read_rows(snapshot))
    train, held_out = write_stage_files(rows, directory, limit=limit)
    return str(train), str(held_out) if held_out else None


def export_evaluation_files(
    *, kind: str, snapshot: Path, directory: Path, all_rows_when_none_held_out: bool = False
) -> dict[str, str]:
    """The evaluate stage's held-out files, from the snapshot's test rows (or, when it holds none
    out and ``all_rows_when_none_held_out``, from all of them: a model that never trained on it).

    ``preferences.jsonl`` (a preference snapshot's pairs, with the votes' agreement and count and the
    row's task and group ids), ``prompts.jsonl`` (the distinct prompts, with their task and group
    ids) and ``texts.jsonl`` (each prompt with its chosen or demonstrated answer, as plain text, for
    perplexity). Returns the paths by name; raises ``StageDataError`` when the
    snapshot holds nothing out.
    """
    test_rows = list(read_rows(snapshot, split="test"))
    if not test_rows and all_rows_when_none_held_out:
        test_rows = list(read_rows(snapshot))
    if not test_rows:
        raise StageDataError(
            "The snapshot holds no rows out (its test share is 0), so there is nothing to evaluate on "
            "that the round did not train on."
        )
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    if kind == "preference":
        pairs = [
            {
                "prompt": row["prompt"],
                "chosen": row["chosen"],
                "rejected": row["rejected"],
                "agreement": row.get("agreement"),
                "n_votes": row.get("n_votes"),
                "group_id": row.get("group_id", ""),
                "task_id": row.get("task_id", ""),
            }
            for row in test_rows
        ]
        files["preferences"] = _write_jsonl(directory / "preferences.jsonl", pairs)
    files["prompts"] = _write_jsonl(directory / "prompts.jsonl", _distinct_prompts(test_rows, with_task_id=True))
    texts = [{"text": text} for text in map(_plain_text, test_rows) if text]
    if texts:
        files["texts"] = _write_jsonl(directory / "texts.jsonl", texts)
    return files


def _plain_text(row: dict[str, Any]) -> str:
    """A held-out row as reference text: its prompt, then its chosen or demonstrated answer."""
    if "messages" in row:
        parts = [message["content"] for message in row["messages"]]
    else:
        answer = row.get("chosen", row.get("completion"))
        if row.get("label") is False:
            answer = None  # an undesirable KTO completion is no reference of good text
        parts = [_content(row.get("prompt")), _content(answer)]
    return "\n\n".join(part for part in parts if part)


def _content(value: Any) -> str:
    if isinstance(value, list):
        return "\n\n".join(str(message.get("content", "")) for message in value)
    return value or ""


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> str:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return str(path)


# One piece of a pretraining corpus in this many is held out when the round evaluates.
HELD_OUT_EVERY = 10


def split_text_corpus(*, source: str, directory: Path, text_field: str) -> dict[str, str]:
    """Hold out a slice of a pretraining corpus, for the round's evaluation to measure perplexity on.

    The corpus (a .txt file or directory, or rows with ``text_field``) is cut into paragraphs (into
    lines when it has few paragraphs), and every ``HELD_OUT_EVERY``-th piece is held out. Writes
    ``train.txt`` (what the pretrain stage trains on), ``held_out.txt`` (its eval set) and
    ``held_out.jsonl`` (one ``text`` row per piece, for the evaluate stage); returns them by name.
    """
    pieces = _corpus_pieces(source, text_field)
    if len(pieces) < 2:
        raise StageDataError(f"{source} is too short to hold a slice out for the evaluation: switch evaluation off.")
    held_out_indices = {index for index in range(len(pieces)) if index % HELD_OUT_EVERY == HELD_OUT_EVERY - 1}
    held_out_indices = held_out_indices or {len(pieces) - 1}
    held_out = [pieces[index] for index in sorted(held_out_indices)]
    train = [piece for index, piece in enumerate(pieces) if index not in held_out_indices]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "train.txt").write_text("\n\n".join(train) + "\n", encoding="utf-8")
    (directory / "held_out.txt").write_text("\n\n".join(held_out) + "\n", encoding="utf-8")
    return {
        "train": str(directory / "train.txt"),
        "held_out": str(directory / "held_out.txt"),
        "held_out_rows": _write_jsonl(directory / "held_out.jsonl", ({"text": piece} for piece in held_out)),
    }


def corpus_pieces_file(*, source: str, path: Path, text_field: str) -> str:
    """A corpus as ``text`` rows, one per paragraph (per line when it has few), for perplexity per piece."""
    pieces = _corpus_pieces(source, text_field)
    if not pieces:
        raise StageDataError(f"{source} holds no text.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return _write_jsonl(path, ({"text": piece} for piece in pieces))


def _corpus_pieces(source: str, text_field: str) -> list[str]:
    """The corpus (a .txt file or directory, or rows with ``text_field``) cut into paragraphs, or into
    lines when it has fewer than ``2 * HELD_OUT_EVERY`` paragraphs."""
    from training.engine import data

    rows = data.load_rows(source)
    column = "text" if data.is_text_source(source) else text_field
    if column not in rows.column_names:
        raise StageDataError(
            f"dataset: {source} needs columns {{{column}}}; it has {sorted(rows.column_names)} (set text_field to its "
            "text column)."
        )
    pieces = []
    for document in rows[column]:
        pieces += [piece.strip() for piece in re.split(r"\n\s*\n", document or "") if piece.strip()]
    if len(pieces) < 2 * HELD_OUT_EVERY:
        pieces = [line.strip() for piece in pieces for line in piece.splitlines() if line.strip()]
    return pieces
