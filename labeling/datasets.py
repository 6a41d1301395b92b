"""Preference datasets: from reviewers' votes to TRL-ready rows, and the files they are kept in.

A build is a pure function of its inputs (judgements, tasks, responses) and its parameters
(``BuildParams``): the same inputs and parameters give the same rows in the same order, and so the
same content hash. ``services/datasets.py`` loads the inputs from the database, calls
``build_rows`` and stores the snapshot; this module imports no models.

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

import numpy as np
import pandas as pd

from labeling.aggregation import (
    DEFAULT_MARGIN_MAP,
    JudgementRecord,
    JudgementTable,
    bradley_terry,
    gold_pairs,
    majority,
    reviewer_reliability,
    vote_weights,
    weighted,
)

KINDS = ("preference", "sft", "kto")
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


# What a build does, in order, as ``labeling.services.datasets.dataset_build(on_phase=...)`` names
# them, with what a page shows while it happens.
BUILD_PHASES = {
    "read": "Reading judgements",
    "aggregate": "Aggregating",
    "write": "Writing the snapshot",
}


@dataclass(frozen=True)
class BuildParams:
    """Everything a build depends on besides its inputs; recorded on the snapshot."""

    kind: str = "preference"  # or "sft", "kto"
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
    sft_sources: tuple[str, ...] = ("rewrites", "best")  # for kind "sft"

    def __post_init__(self) -> None:
        errors = {}
        if self.kind not in KINDS:
            errors["kind"] = f"must be one of {', '.join(KINDS)}"
        if not self.sft_sources or set(self.sft_sources) - {"rewrites", "best"}:
            errors["sft_sources"] = "must name rewrites and/or best"
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
        data["sft_sources"] = sorted(self.sft_sources)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BuildParams:
        """The inverse of ``to_json`` (a queued build job keeps its parameters as JSON)."""
        fields = dict(data)
        fields["exclude_reviewers"] = tuple(fields.get("exclude_reviewers", ()))
        if "margin_map" in fields:
            fields["margin_map"] = tuple(sorted((int(k), float(v)) for k, v in fields["margin_map"].items()))
        if "sft_sources" in fields:
            fields["sft_sources"] = tuple(fields["sft_sources"])
        return cls(**fields)


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


def _verdicts(pairs: pd.DataFrame, tasks: Mapping[int, TaskInfo], params: BuildParams) -> pd.DataFrame:
    margin_map = dict(params.margin_map)
    if params.method == "majority":
        verdicts = majority(pairs, margin_map=margin_map)
        verdicts["confidence"] = verdicts["p_a"].where(verdicts["p_a"] >= 0.5, 1 - verdicts["p_a"])
        return verdicts
    gold = gold_pairs(task for task in tasks.values() if task.is_gold)
    reliability = reviewer_reliability(pairs, gold_pairs=gold).reliability
    if params.method == "weighted":
        return weighted(pairs, reliability=reliability, margin_map=margin_map)
    weights = vote_weights(pairs, reliability=reliability)
    return bradley_terry(pairs, weights=weights, margin_map=margin_map).pairs


def _split(group_id: str, params: BuildParams) -> str:
    if params.test_fraction <= 0:
        return "train"
    digest = hashlib.sha256(f"{params.seed}:{group_id}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < params.test_fraction else "train"


@dataclass
class BuildInputs:
    """What a build reads, as plain data: loaded by ``selectors.load_build_inputs``.

    ``judgements`` holds the comparative answers in columns; ``records`` keeps them as records too
    only when the loader was asked to (the quality page reads raw ranking and Likert answers).
    """

    judgements: JudgementTable = field(default_factory=JudgementTable)
    records: list[JudgementRecord] = field(default_factory=list)
    tasks: dict[int, TaskInfo] = field(default_factory=dict)
    responses: dict[int, ResponseInfo] = field(default_factory=dict)
    flagged_responses: set[int] = field(default_factory=set)
    # (task id, reviewer id, rewritten text) from rewrite questions: SFT demonstrations.
    rewrites: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class KeptVerdict:
    task_id: int
    chosen: int
    rejected: int
    tie: bool
    margin: float
    confidence: float
    n_votes: int
    agreement: float


def _kept_verdicts(inputs: BuildInputs, params: BuildParams, counts: dict[str, Any]) -> list[KeptVerdict]:
    """Aggregate the votes and apply the filters; ``counts`` records what was dropped and why."""
    table = inputs.judgements
    keep = ~np.isin(table.column("reviewer_id"), list(params.exclude_reviewers))
    if not params.include_gold:
        keep &= ~table.column("is_gold")
    counts["judgements"] = len(np.unique(table.column("judgement_id")[keep]))
    pairs = table.expand(keep=keep, likert_threshold=params.likert_threshold)
    if pairs.empty:
        return []
    verdicts = _verdicts(pairs, inputs.tasks, params).sort_values(["task_id", "a", "b"], kind="stable")
    counts["verdicts"] = len(verdicts)
    flagged = inputs.flagged_responses
    kept = []
    for verdict in verdicts.itertuples(index=False):
        if verdict.n_votes < params.min_votes:
            counts["dropped"]["too_few_votes"] += 1
        elif verdict.tie and params.ties == "drop":
            counts["dropped"]["tie"] += 1
        elif verdict.agreement < params.min_agreement:
            counts["dropped"]["low_agreement"] += 1
        elif not verdict.tie and verdict.confidence < params.min_confidence:
            counts["dropped"]["low_confidence"] += 1
        elif params.drop_both_bad and verdict.both_bad_share >= 0.5:
            counts["dropped"]["both_bad"] += 1
        elif params.drop_flagged and (verdict.a in flagged or verdict.b in flagged):
            counts["dropped"]["flagged_response"] += 1
        else:
            chosen, rejected = (verdict.a, verdict.b) if verdict.tie else (verdict.chosen, verdict.rejected)
            kept.append(
                KeptVerdict(
                    task_id=int(verdict.task_id),
                    chosen=int(chosen),
                    rejected=int(rejected),
                    tie=bool(verdict.tie),
                    margin=0.0 if verdict.tie else round(float(verdict.margin), 6),
                    confidence=round(float(verdict.confidence), 6),
                    n_votes=int(verdict.n_votes),
                    agreement=round(float(verdict.agreement), 6),
                )
            )
    return kept


def _preference_rows(inputs: BuildInputs, verdicts: list[KeptVerdict], params: BuildParams) -> list[dict[str, Any]]:
    rows = []
    for verdict in verdicts:
        task = inputs.tasks[verdict.task_id]
        chosen, rejected = inputs.responses[verdict.chosen], inputs.responses[verdict.rejected]
        rows.append(
            {
                "prompt": task.prompt,
                "chosen": chosen.text,
                "rejected": rejected.text,
                "margin": verdict.margin,
                "confidence": verdict.confidence,
                "n_votes": verdict.n_votes,
                "agreement": verdict.agreement,
                "tie": verdict.tie,
                "group_id": task.group_id,
                "task_id": str(task.task_id),
                "chosen_id": verdict.chosen,
                "rejected_id": verdict.rejected,
                "chosen_model": chosen.model_name,
                "rejected_model": rejected.model_name,
                "split": _split(task.group_id, params),
            }
        )
    if any(isinstance(row["prompt"], list) for row in rows):
        rows = [_conversational(row) for row in rows]
    return rows


def _response_outcomes(verdicts: list[KeptVerdict]) -> tuple[set[int], set[int]]:
    """Responses that won every decisive verdict they were in, and those that lost every one."""
    won, lost = Counter(), Counter()
    for verdict in verdicts:
        if not verdict.tie:
            won[verdict.chosen] += 1
            lost[verdict.rejected] += 1
    return set(won) - set(lost), set(lost) - set(won)


def _completion_row(task: TaskInfo, text: str, params: BuildParams, **extra: Any) -> dict[str, Any]:
    row = {"prompt": task.prompt, "completion": text, "group_id": task.group_id, "task_id": str(task.task_id)}
    return {**row, **extra, "split": _split(task.group_id, params)}


def _sft_rows(inputs: BuildInputs, verdicts: list[KeptVerdict], params: BuildParams) -> list[dict[str, Any]]:
    """Demonstrations: reviewers' rewrites, and responses that won every comparison they were in."""
    rows = []
    if "rewrites" in params.sft_sources:
        for task_id, _, text in sorted(inputs.rewrites):
            if params.include_gold or not inputs.tasks[task_id].is_gold:
                rows.append(_completion_row(inputs.tasks[task_id], text, params, source="rewrite", model=""))
    if "best" in params.sft_sources:
        best, _ = _response_outcomes(verdicts)
        task_of = {v.chosen: v.task_id for v in verdicts} | {v.rejected: v.task_id for v in verdicts}
        for response_id in sorted(best):
            response = inputs.responses[response_id]
            task = inputs.tasks[task_of[response_id]]
            rows.append(_completion_row(task, response.text, params, source="best", model=response.model_name))
    return [_conversational_completion(row) for row in rows] if _any_messages(rows) else rows


def _kto_rows(inputs: BuildInputs, verdicts: list[KeptVerdict], params: BuildParams) -> list[dict[str, Any]]:
    """Unpaired examples (KTO): a response that won all its comparisons is desirable, one that lost all is not."""
    good, bad = _response_outcomes(verdicts)
    task_of = {v.chosen: v.task_id for v in verdicts} | {v.rejected: v.task_id for v in verdicts}
    rows = [
        _completion_row(
            inputs.tasks[task_of[response_id]],
            inputs.responses[response_id].text,
            params,
            label=response_id in good,
            model=inputs.responses[response_id].model_name,
        )
        for response_id in sorted(good | bad)
    ]
    return [_conversational_completion(row) for row in rows] if _any_messages(rows) else rows


def _any_messages(rows: list[dict[str, Any]]) -> bool:
    return any(isinstance(row["prompt"], list) for row in rows)


def _conversational_completion(row: dict[str, Any]) -> dict[str, Any]:
    prompt = row["prompt"]
    return {
        **row,
        "prompt": [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt,
        "completion": [{"role": "assistant", "content": row["completion"]}],
    }


ROW_MAKERS = {"preference": _preference_rows, "sft": _sft_rows, "kto": _kto_rows}


def build_rows(*, inputs: BuildInputs, params: BuildParams) -> BuildResult:
    """Aggregate the votes, apply the filters, and make the rows of ``params.kind``.

    ``preference``: one TRL preference row per kept verdict. ``sft``: prompt/completion rows from
    reviewers' rewrites and from responses that won every comparison they were in. ``kto``:
    prompt/completion/label rows, desirable for responses that won all their comparisons, not
    for those that lost all (mixed records are left out). ``counts`` says what was kept and, per
    reason, what was dropped.
    """
    counts: dict[str, Any] = {"dropped": Counter()}
    verdicts = _kept_verdicts(inputs, params, counts)
    if not verdicts and not (params.kind == "sft" and "rewrites" in params.sft_sources and inputs.rewrites):
        if counts.get("verdicts"):
            reasons = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in counts["dropped"].most_common())
            raise DatasetError(
                f"Every pair was filtered out ({reasons}); loosen the filters.", {"filters": "Nothing left."}
            )
        raise DatasetError(
            "There are no judgements to build from"
            + (" once the excluded reviewers and gold tasks are left out." if len(inputs.judgements) else "."),
            {"campaigns": "No comparative judgements yet."},
        )
    rows = ROW_MAKERS[params.kind](inputs, verdicts, params)
    if not rows:
        raise DatasetError(f"The judgements give no {params.kind} rows with these settings.", {"kind": "Empty."})
    counts["dropped"] = dict(counts["dropped"])
    counts["rows"] = counts["pairs"] = len(rows)
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
    return _canonical_hash(rows, params.to_json())


def file_content_hash(path: Path, parameters: Mapping[str, Any]) -> str:
    """The ``content_hash`` of a snapshot file as written, with its build parameters as stored.

    Recomputed from the file, it tells whether the snapshot is still the one that was built
    (after a restore, a copy, or years on disk).
    """
    return _canonical_hash(read_rows(path), parameters)


def _canonical_hash(rows: Iterable[Mapping[str, Any]], parameters: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(parameters, sort_keys=True, separators=(",", ":")).encode())
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
        _export_parquet(source, out, split=split)
    else:
        _export_hf(source, out, split=split)
    return out


def _line_blocks(path: Path, lines_per_block: int = 20_000) -> Iterator[bytes]:
    """The JSONL file in blocks of whole lines, so each block parses on its own."""
    with path.open("rb") as handle:
        while block := b"".join(line for _, line in zip(range(lines_per_block), handle, strict=False)):
            yield block


def _export_parquet(source: Path, out: Path, *, split: str | None) -> None:
    """Parquet from the JSONL snapshot, block by block with Arrow's JSON reader (memory flat in rows).

    The first block fixes the schema and every later block is parsed against it, so all row groups
    share one schema even where a block alone would infer another type (an all-empty column, say).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    writer = None
    written = 0
    fd, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        for block in _line_blocks(source):
            options = pa_json.ParseOptions(explicit_schema=writer.schema) if writer else None
            table = pa_json.read_json(pa.py_buffer(block), parse_options=options)
            if split is not None:
                table = table.filter(pc.equal(table["split"], split))
            if writer is None:
                writer = pq.ParquetWriter(temporary, table.schema)
            writer.write_table(table)
            written += table.num_rows
        if writer is not None:
            writer.close()
        if not written:
            raise DatasetError("The snapshot has no rows in that split.", {"split": "Empty."})
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
