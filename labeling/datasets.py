"""Preference datasets: from reviewers' votes to TRL-ready rows, and the files they are kept in.

A build is a pure function of its inputs (judgements, tasks, responses) and its parameters
(``BuildParams``): the same inputs and parameters give the same rows in the same order, and so the
same content hash. ``services/datasets.py`` loads the inputs from the database, calls
``build_preference_rows`` and stores the snapshot; this module imports no models.

Rows follow DESIGN.md ("Preference export"): ``prompt, chosen, rejected, margin, confidence,
n_votes, agreement, group_id, task_id, chosen_model, rejected_model`` plus ``split`` (train/test,
by prompt). When any prompt is a message list, every row takes the conversational form: ``prompt``
is the messages and ``chosen``/``rejected`` are ``[{"role": "assistant", "content": ...}]`` (one
Arrow schema per file, which TRL and Parquet need).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from labeling.aggregation import (
    DEFAULT_MARGIN_MAP,
    JudgementRecord,
    bradley_terry,
    expand_pairs,
    gold_pairs,
    majority,
    reviewer_reliability,
    vote_weights,
    weighted,
)

METHODS = ("majority", "weighted", "bradley_terry")
TIE_POLICIES = ("drop", "keep")
EXPORT_FORMATS = ("jsonl", "parquet", "hf")
ROW_BATCH = 5000


class DatasetError(ValueError):
    """A build or export that cannot be done; ``errors`` maps a parameter to what is wrong."""

    def __init__(self, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


@dataclass(frozen=True)
class BuildParams:
    """Everything a build depends on besides its inputs; recorded on the snapshot."""

    method: str = "bradley_terry"
    min_votes: int = 1
    min_agreement: float = 0.0  # share of votes on the chosen side, 0..1
    min_confidence: float = 0.5  # the method's probability that chosen is better, 0.5..1
    ties: str = "drop"  # or "keep", with margin 0
    drop_flagged: bool = True  # pairs with a response a reviewer flagged (unsafe, ...)
    drop_both_bad: bool = True  # pairs most reviewers called both bad
    include_gold: bool = False  # gold tasks measure reviewers; they stay out of datasets by default
    exclude_reviewers: tuple[int, ...] = ()
    test_fraction: float = 0.0  # share of prompts (not pairs) held out
    seed: int = 0
    margin_map: tuple[tuple[int, float], ...] = tuple(sorted(DEFAULT_MARGIN_MAP.items()))
    likert_threshold: float = 1.0

    def __post_init__(self) -> None:
        errors = {}
        if self.method not in METHODS:
            errors["method"] = f"must be one of {', '.join(METHODS)}"
        if self.min_votes < 1:
            errors["min_votes"] = "must be at least 1"
        if not 0 <= self.min_agreement <= 1:
            errors["min_agreement"] = "must be a share from 0 to 1"
        if not 0.5 <= self.min_confidence <= 1:
            errors["min_confidence"] = "must be a probability from 0.5 to 1"
        if self.ties not in TIE_POLICIES:
            errors["ties"] = f"must be one of {', '.join(TIE_POLICIES)}"
        if not 0 <= self.test_fraction < 1:
            errors["test_fraction"] = "must be a share from 0 to below 1"
        if self.likert_threshold <= 0:
            errors["likert_threshold"] = "must be positive (scale points)"
        if errors:
            raise DatasetError("Some build parameters need fixing.", errors)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["exclude_reviewers"] = sorted(self.exclude_reviewers)
        data["margin_map"] = {str(k): v for k, v in self.margin_map}
        return data


@dataclass(frozen=True)
class TaskInfo:
    task_id: int
    prompt: str | list[dict[str, str]]
    group_id: str
    is_gold: bool
    gold: Mapping[str, Any] | None
    response_ids: tuple[int, ...]


@dataclass(frozen=True)
class ResponseInfo:
    response_id: int
    text: str
    model_name: str


@dataclass
class BuildResult:
    rows: list[dict[str, Any]]
    counts: dict[str, Any] = field(default_factory=dict)


def _verdicts(pairs: pd.DataFrame, records: list[JudgementRecord], params: BuildParams) -> pd.DataFrame:
    margin_map = dict(params.margin_map)
    if params.method == "majority":
        verdicts = majority(pairs, margin_map=margin_map)
        verdicts["confidence"] = verdicts["p_a"].where(verdicts["p_a"] >= 0.5, 1 - verdicts["p_a"])
        return verdicts
    reliability = reviewer_reliability(pairs, gold_pairs=gold_pairs(records)).reliability
    if params.method == "weighted":
        return weighted(pairs, reliability=reliability, margin_map=margin_map)
    weights = vote_weights(pairs, reliability=reliability)
    return bradley_terry(pairs, weights=weights, margin_map=margin_map).pairs


def _split(group_id: str, params: BuildParams) -> str:
    if params.test_fraction <= 0:
        return "train"
    digest = hashlib.sha256(f"{params.seed}:{group_id}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < params.test_fraction else "train"


def build_preference_rows(
    *,
    records: Iterable[JudgementRecord],
    tasks: Mapping[int, TaskInfo],
    responses: Mapping[int, ResponseInfo],
    flagged_responses: Iterable[int] = (),
    params: BuildParams,
) -> BuildResult:
    """Aggregate the votes and turn each kept verdict into one TRL preference row.

    ``records`` are the comparative answers (pairwise, ranking or likert) of the campaigns;
    reviewers in ``params.exclude_reviewers`` and, unless ``include_gold``, gold tasks are left
    out before aggregating. ``counts`` says how many pairs and prompts were kept and, per reason,
    how many verdicts were dropped.
    """
    excluded = set(params.exclude_reviewers)
    kept_records = [
        r for r in records if r.reviewer_id not in excluded and (params.include_gold or not tasks[r.task_id].is_gold)
    ]
    counts: dict[str, Any] = {"judgements": len({r.judgement_id for r in kept_records}), "dropped": Counter()}
    pairs = expand_pairs(kept_records, likert_threshold=params.likert_threshold)
    if pairs.empty:
        raise DatasetError(
            "There are no judgements to build from"
            + (" once the excluded reviewers and gold tasks are left out." if records else "."),
            {"campaigns": "No comparative judgements yet."},
        )
    verdicts = _verdicts(pairs, kept_records, params).sort_values(["task_id", "a", "b"], kind="stable")
    counts["verdicts"] = len(verdicts)
    flagged = set(flagged_responses)

    rows = []
    for verdict in verdicts.itertuples(index=False):
        if verdict.n_votes < params.min_votes:
            counts["dropped"]["too_few_votes"] += 1
            continue
        if verdict.tie and params.ties == "drop":
            counts["dropped"]["tie"] += 1
            continue
        if verdict.agreement < params.min_agreement:
            counts["dropped"]["low_agreement"] += 1
            continue
        if not verdict.tie and verdict.confidence < params.min_confidence:
            counts["dropped"]["low_confidence"] += 1
            continue
        if params.drop_both_bad and verdict.both_bad_share >= 0.5:
            counts["dropped"]["both_bad"] += 1
            continue
        if params.drop_flagged and (verdict.a in flagged or verdict.b in flagged):
            counts["dropped"]["flagged_response"] += 1
            continue
        chosen_id, rejected_id = (verdict.a, verdict.b) if verdict.tie else (verdict.chosen, verdict.rejected)
        task = tasks[verdict.task_id]
        chosen, rejected = responses[int(chosen_id)], responses[int(rejected_id)]
        rows.append(
            {
                "prompt": task.prompt,
                "chosen": chosen.text,
                "rejected": rejected.text,
                "margin": 0.0 if verdict.tie else round(float(verdict.margin), 6),
                "confidence": round(float(verdict.confidence), 6),
                "n_votes": int(verdict.n_votes),
                "agreement": round(float(verdict.agreement), 6),
                "tie": bool(verdict.tie),
                "group_id": task.group_id,
                "task_id": str(task.task_id),
                "chosen_id": int(chosen_id),
                "rejected_id": int(rejected_id),
                "chosen_model": chosen.model_name,
                "rejected_model": rejected.model_name,
                "split": _split(task.group_id, params),
            }
        )
    if not rows:
        reasons = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in counts["dropped"].most_common())
        raise DatasetError(
            f"Every pair was filtered out ({reasons}); loosen the filters.", {"filters": "Nothing left."}
        )
    if any(isinstance(row["prompt"], list) for row in rows):
        rows = [_conversational(row) for row in rows]
    counts["dropped"] = dict(counts["dropped"])
    counts["pairs"] = len(rows)
    counts["prompts"] = len({row["group_id"] for row in rows})
    counts["splits"] = dict(Counter(row["split"] for row in rows))
    return BuildResult(rows=rows, counts=counts)


def _conversational(row: dict[str, Any]) -> dict[str, Any]:
    prompt = row["prompt"]
    return {
        **row,
        "prompt": [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt,
        "chosen": [{"role": "assistant", "content": row["chosen"]}],
        "rejected": [{"role": "assistant", "content": row["rejected"]}],
    }


def content_hash(rows: Iterable[Mapping[str, Any]], params: BuildParams) -> str:
    """SHA-256 over the parameters and the rows in order, in a canonical JSON form."""
    digest = hashlib.sha256()
    digest.update(json.dumps(params.to_json(), sort_keys=True, separators=(",", ":")).encode())
    for row in rows:
        digest.update(b"\n")
        digest.update(json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    return digest.hexdigest()


# --- files --------------------------------------------------------------------------------------


def write_rows(rows: Iterable[Mapping[str, Any]], path: Path) -> None:
    """Write JSONL atomically: a reader never sees half a snapshot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # One write per batch: a write per row costs as much as encoding it.
            for batch in _batches(iter(rows)):
                handle.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in batch))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_rows(path: Path, *, split: str | None = None) -> Iterator[dict[str, Any]]:
    """Stream a snapshot's rows, optionally one split only."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if split is None or row["split"] == split:
                yield row


def _batches(rows: Iterator[dict[str, Any]], size: int = ROW_BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def export_rows(*, source: Path, file_format: str, out: Path, split: str | None = None) -> Path:
    """Export a snapshot as JSONL, Parquet or a Hugging Face dataset directory (``save_to_disk``).

    Rows stream in batches, so memory stays flat in the number of rows. The HF directory holds a
    ``DatasetDict`` with ``train`` and, when the snapshot has one, ``test``; ``datasets.load_from_disk``
    opens it, and TRL's ``DPOTrainer`` and ``RewardTrainer`` take its splits as they are.
    """
    if file_format not in EXPORT_FORMATS:
        raise DatasetError(f"Unknown format {file_format!r}.", {"format": f"One of {', '.join(EXPORT_FORMATS)}."})
    if out.exists():
        raise DatasetError(f"{out} already exists; choose a new path.", {"out": "Already exists."})
    out.parent.mkdir(parents=True, exist_ok=True)
    if file_format == "jsonl":
        write_rows(read_rows(source, split=split), out)
    elif file_format == "parquet":
        _export_parquet(read_rows(source, split=split), out)
    else:
        _export_hf(source, out, split=split)
    return out


def _export_parquet(rows: Iterator[dict[str, Any]], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    fd, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        for batch in _batches(rows):
            table = pa.Table.from_pylist(batch, schema=writer.schema if writer else None)
            writer = writer or pq.ParquetWriter(temporary, table.schema)
            writer.write_table(table)
        if writer is None:
            raise DatasetError("The snapshot has no rows in that split.", {"split": "Empty."})
        writer.close()
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _export_hf(source: Path, out: Path, *, split: str | None) -> None:
    import datasets

    splits = [split] if split else ["train", "test"]
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as cache:
        parts = {}
        for name in splits:
            if not any(True for _ in read_rows(source, split=name)):
                continue
            parts[name] = datasets.Dataset.from_generator(
                read_rows, gen_kwargs={"path": source, "split": name}, cache_dir=cache, keep_in_memory=False
            )
        if not parts:
            raise DatasetError("The snapshot has no rows in that split.", {"split": "Empty."})
        datasets.DatasetDict(parts).save_to_disk(str(out))
