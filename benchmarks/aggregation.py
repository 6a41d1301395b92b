"""Aggregation and dataset export at scale: 1,000,000 judgements -> pairs -> Bradley-Terry -> files.

What it measures
    Synthetic judgements over ``--prompts`` prompts (default 250,000) with 4 responses each go
    through the pure functions the dataset build uses (no Django, no database: ``labeling.datasets``
    and ``labeling.aggregation`` import none), one timed phase at a time:

    1. ``generate``      the synthetic answers as numpy arrays (and the TaskInfo/ResponseInfo maps);
    2. ``stream``        iterate the synthetic rows alone: the input's own cost (in the app, reading
                         the rows from the database), taken out of ``load`` in the targets;
    3. ``load``          stream each judgement's fields into a ``JudgementTable`` with ``add``, the
                         way ``selectors.load_build_inputs`` streams database rows (the answers are
                         parsed here; no list of records is ever held);
    4. ``expand_pairs``  ``JudgementTable.expand``: one row per (judgement, pair of responses);
    5. ``reliability``   ``gold_pairs`` + ``reviewer_reliability`` (Dawid-Skene EM) + ``vote_weights``;
    6. ``bradley_terry`` the weighted per-task Bradley-Terry fit -> one verdict per (task, a, b);
    7. ``build_rows``    ``build_rows`` from the same loaded table: the whole build again (expand +
                         reliability + BT + filters + one dict per kept pair), as the dataset
                         service runs it;
    8. ``write_jsonl``   ``write_rows`` of those rows to JSONL (the snapshot file);
    9. ``export_parquet`` ``export_rows(file_format="parquet")`` from that JSONL.

    Each phase prints its wall time (``time.perf_counter``), its CPU time (``time.process_time``: on a
    machine that other work shares, the figure to compare), the process's RSS when it started, the
    peak RSS during the phase (the kernel's high-water mark, reset at the start of each phase via
    ``/proc/self/clear_refs``; falls back to ``ru_maxrss``, which never goes down), the peak minus the
    start (what the phase itself needed on top of what was already live) and the process's
    ``ru_maxrss`` so far. ``--tracemalloc`` also records Python-heap peaks per phase (it slows the
    Python-heavy phases by 2x or more, so times from such a run are not the ones to compare).
    Targets (the issue): aggregation = (load - stream) + expand_pairs + reliability + bradley_terry
    <= 10 s with peak RSS <= 2 GB; export = write_jsonl + export_parquet <= 15 s with memory flat (its peak
    over its start stays small and does not grow with the number of rows).

The synthetic workload (seeded; ``--seed``)
    - P = ``--prompts`` prompts, 4 responses each, with a hidden true score per response.
    - A third of the prompts (``P // 3``, 83,333 at the default) are *pairwise*: 2 pairwise
      questions each, the pairs (r0, r1) and (r2, r3) of a random permutation of the 4 responses;
      the other ``P - P // 3`` (166,667) are *rankings* of all 4 responses (one question).
    - Every compared item (pairwise question or ranking) gets 3 votes from 3 different reviewers:
      3 * (2 * 83,333 + 166,667) = 999,999 judgements. 1,000,000 is not a multiple of 3, so the last
      ranking prompt gets a 4th vote, which makes exactly 1,000,000 at the default size (the
      extra vote is added at every size, so 10% gives 3 * (2 * 8,333 + 16,667) + 1 = 100,000).
    - 500 reviewers: 450 reliable (each sees the true scores plus Gaussian noise, sd drawn from
      0.3..1.0 per reviewer, so they agree with the true order on about 75-95% of pairs) and 50 that
      answer at random. Pairwise answers carry a strength 1..3 (larger when the perceived gap is
      larger), ``both_bad`` on about 3%, and no winner (a tie) on about 2%; a ranking puts two
      adjacent responses in one group (a tie) on about 5% of answers. Shown orders are random.
    - Prompts are about 60 characters, responses ``--response-chars`` (default 100); 4 models.

Run
    .venv/bin/python benchmarks/aggregation.py                    # 250,000 prompts: 1,000,000 judgements
    .venv/bin/python benchmarks/aggregation.py --prompts 25000    # 10%
    .venv/bin/python benchmarks/aggregation.py --out var/agg_bench  # keep the JSONL and Parquet files

Without ``--out`` the files go to a temporary directory that is deleted at the end.
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labeling.aggregation import (
    JudgementTable,
    bradley_terry,
    gold_pairs,
    reviewer_reliability,
    vote_weights,
)
from labeling.datasets import (
    BuildInputs,
    BuildParams,
    ResponseInfo,
    TaskInfo,
    build_rows,
    export_rows,
    write_rows,
)

N_RESPONSES = 4
VOTES = 3
N_REVIEWERS = 500
N_RANDOM_REVIEWERS = 50
MODELS = ("model-a", "model-b", "model-c", "model-d")
AGG_TARGET_S, AGG_TARGET_BYTES, EXPORT_TARGET_S = 10.0, 2 * 1024**3, 15.0
_FILLER = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco "
) * 20


# --- memory ---------------------------------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    kb = _status_kb("VmRSS")
    return (kb or 0) * 1024


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_bytes() -> int:
    kb = _status_kb("VmHWM")
    return kb * 1024 if kb is not None else maxrss_bytes()


@dataclass
class Phase:
    name: str
    seconds: float
    cpu_seconds: float  # this process's user + system time: what the phase costs when other work shares the cores
    rss_start: int
    peak: int
    rss_end: int
    maxrss: int  # the process's peak RSS so far (max over phases; ru_maxrss is reset with the phase peak)
    py_peak: int | None  # tracemalloc peak over the phase's start, when --tracemalloc


class Meter:
    def __init__(self, *, use_tracemalloc: bool):
        self.phases: list[Phase] = []
        self.use_tracemalloc = use_tracemalloc
        self.peak_resettable = reset_peak()
        self.process_peak = 0

    def run(self, name: str, func: Callable[[], Any]) -> Any:
        gc.collect()
        rss_start = rss_bytes()
        self.peak_resettable = reset_peak()
        if self.use_tracemalloc:
            tracemalloc.start()
            traced_start = tracemalloc.get_traced_memory()[0]
        started, cpu_started = time.perf_counter(), time.process_time()
        result = func()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        py_peak = None
        if self.use_tracemalloc:
            py_peak = tracemalloc.get_traced_memory()[1] - traced_start
            tracemalloc.stop()
        peak = peak_bytes() if self.peak_resettable else maxrss_bytes()
        self.process_peak = max(self.process_peak, peak, maxrss_bytes())
        phase = Phase(name, seconds, cpu_seconds, rss_start, peak, rss_bytes(), self.process_peak, py_peak)
        self.phases.append(phase)
        grown = _mb(peak - rss_start)
        print(
            f"  {name:<15} {seconds:8.2f} s (CPU {cpu_seconds:6.2f} s)   peak RSS {_mb(peak):>8}   "
            f"(+{grown} over start)",
            flush=True,
        )
        return result


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


# --- synthetic workload ---------------------------------------------------------------------------


def _three_reviewers(rng: np.random.Generator, n: int) -> np.ndarray:
    """n rows of 3 distinct reviewer indexes (0..N_REVIEWERS-1)."""
    first = rng.integers(0, N_REVIEWERS, n)
    step1 = rng.integers(1, N_REVIEWERS // 2, n)
    step2 = rng.integers(1, N_REVIEWERS // 2, n)
    return np.stack([first, first + step1, first + step1 + step2], axis=1) % N_REVIEWERS


def generate(
    n_prompts: int, seed: int, response_chars: int
) -> tuple[Callable[[], Iterator[dict[str, Any]]], dict, dict, dict]:
    """The judgements (a function that yields each one's fields, as the loader reads database rows),
    the TaskInfo and ResponseInfo maps, and a description of the mix."""
    rng = np.random.default_rng(seed)
    n_pairwise_prompts = n_prompts // 3
    n_ranking_prompts = n_prompts - n_pairwise_prompts

    task_ids = np.arange(1, n_prompts + 1)
    response_ids = (task_ids[:, None] - 1) * N_RESPONSES + np.arange(1, N_RESPONSES + 1)  # (P, 4)
    true_score = rng.normal(0.0, 1.0, size=(n_prompts, N_RESPONSES))

    noise_sd = rng.uniform(0.3, 1.0, N_REVIEWERS)
    is_random = np.zeros(N_REVIEWERS, dtype=bool)
    is_random[rng.choice(N_REVIEWERS, N_RANDOM_REVIEWERS, replace=False)] = True

    def perceived(prompt: np.ndarray, reviewer: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """What each reviewer perceives: true score + own noise; random reviewers see pure noise."""
        truth = np.take_along_axis(true_score[prompt], columns, axis=1)
        noise = rng.normal(size=truth.shape) * noise_sd[reviewer][:, None]
        return np.where(is_random[reviewer][:, None], rng.normal(size=truth.shape), truth + noise)

    # Pairwise prompts: 2 questions per prompt (disjoint pairs of a permutation), 3 votes each.
    pw_prompt = np.repeat(np.arange(n_pairwise_prompts), 2)  # one row per question
    perm = rng.permuted(np.tile(np.arange(N_RESPONSES), (n_pairwise_prompts, 1)), axis=1)
    pw_columns = perm.reshape(-1, 2)  # (2 * Ppw, 2) response columns of each question
    pw_prompt_v = np.repeat(pw_prompt, VOTES)  # one row per vote
    pw_columns_v = np.repeat(pw_columns, VOTES, axis=0)
    pw_reviewer = _three_reviewers(rng, len(pw_prompt)).reshape(-1)
    flip = rng.random(len(pw_prompt_v)) < 0.5  # shown order
    shown_columns = np.where(flip[:, None], pw_columns_v[:, ::-1], pw_columns_v)
    seen = perceived(pw_prompt_v, pw_reviewer, shown_columns)
    gap = seen[:, 0] - seen[:, 1]
    winner_col = np.where(gap > 0, shown_columns[:, 0], shown_columns[:, 1])
    strength = np.clip(1 + (np.abs(gap) > 0.8) + (np.abs(gap) > 1.6), 1, 3)
    no_winner = rng.random(len(gap)) < 0.02
    both_bad = rng.random(len(gap)) < 0.03
    shown_ids = np.take_along_axis(response_ids[pw_prompt_v], shown_columns, axis=1)
    winner_id = response_ids[pw_prompt_v, winner_col]

    # Ranking prompts: one ranking of all 4 responses, 3 votes (the last prompt gets a 4th).
    rk_prompt = np.arange(n_pairwise_prompts, n_prompts)
    rk_prompt_v = np.repeat(rk_prompt, VOTES)
    rk_reviewer = _three_reviewers(rng, len(rk_prompt)).reshape(-1)
    if len(rk_prompt):
        rk_prompt_v = np.r_[rk_prompt_v, rk_prompt[-1]]
        extra = (rk_reviewer[-1] + 1) % N_REVIEWERS
        while extra in rk_reviewer[-VOTES:]:
            extra = (extra + 1) % N_REVIEWERS
        rk_reviewer = np.r_[rk_reviewer, extra]
    all_columns = np.tile(np.arange(N_RESPONSES), (len(rk_prompt_v), 1))
    rk_seen = perceived(rk_prompt_v, rk_reviewer, all_columns)
    order_columns = np.argsort(-rk_seen, axis=1)  # best first
    order_ids = np.take_along_axis(response_ids[rk_prompt_v], order_columns, axis=1)
    tie_at = np.where(rng.random(len(rk_prompt_v)) < 0.05, rng.integers(0, N_RESPONSES - 1, len(rk_prompt_v)), -1)
    shown_rk = np.take_along_axis(
        response_ids[rk_prompt_v], rng.permuted(np.tile(np.arange(N_RESPONSES), (len(rk_prompt_v), 1)), axis=1), axis=1
    )
    # One tuple per task, shared by its judgements, as the loader shares TaskInfo.response_ids.
    response_tuples = [tuple(row) for row in response_ids.tolist()]

    def records() -> Iterator[dict[str, Any]]:
        judgement_id = 0
        for p, shown, win, st, none, bb, rev in zip(
            pw_prompt_v.tolist(),
            shown_ids.tolist(),
            winner_id.tolist(),
            strength.tolist(),
            no_winner.tolist(),
            both_bad.tolist(),
            pw_reviewer.tolist(),
            strict=True,
        ):
            judgement_id += 1
            yield {
                "judgement_id": judgement_id,
                "task_id": p + 1,
                "reviewer_id": rev + 1,
                "question_type": "pairwise",
                "answer": {"winner": None if none else win, "strength": st, "both_bad": bb},
                "response_ids": response_tuples[p],
                "shown_order": shown,
            }
        for p, order, tie, shown, rev in zip(
            rk_prompt_v.tolist(),
            order_ids.tolist(),
            tie_at.tolist(),
            shown_rk.tolist(),
            rk_reviewer.tolist(),
            strict=True,
        ):
            judgement_id += 1
            if tie < 0:
                groups = [[rid] for rid in order]
            else:
                groups = [[rid] for rid in order[:tie]] + [order[tie : tie + 2]] + [[rid] for rid in order[tie + 2 :]]
            yield {
                "judgement_id": judgement_id,
                "task_id": p + 1,
                "reviewer_id": rev + 1,
                "question_type": "ranking",
                "answer": {"order": groups},
                "response_ids": response_tuples[p],
                "shown_order": shown,
            }

    prompt_tail = _FILLER[:40]
    tasks = {
        int(t): TaskInfo(
            task_id=int(t),
            prompt=f"Prompt {t}: {prompt_tail}",
            group_id=f"prompt-{t}",
            is_gold=False,
            gold=None,
            response_ids=tuple(int(r) for r in response_ids[t - 1]),
        )
        for t in task_ids.tolist()
    }
    responses = {}
    for rid in response_ids.reshape(-1).tolist():
        head = f"Response {rid}: "
        start = rid % 97
        responses[rid] = ResponseInfo(
            response_id=rid,
            text=head + _FILLER[start : start + max(response_chars - len(head), 0)],
            model_name=MODELS[(rid - 1) % len(MODELS)],
        )
    mix = {
        "prompts": n_prompts,
        "pairwise_prompts": n_pairwise_prompts,
        "ranking_prompts": n_ranking_prompts,
        "pairwise_judgements": len(pw_prompt_v),
        "ranking_judgements": len(rk_prompt_v),
        "judgements": len(pw_prompt_v) + len(rk_prompt_v),
    }
    return records, tasks, responses, mix


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=250_000, help="prompts (4 responses each); default 250000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep the files here (default: a temp dir, deleted)")
    parser.add_argument("--response-chars", type=int, default=100, help="characters per response text")
    parser.add_argument("--tracemalloc", action="store_true", help="also record Python-heap peaks (slower)")
    args = parser.parse_args(argv)
    if args.prompts < 3:
        parser.error("--prompts must be at least 3")

    if args.out is None:
        out_dir = Path(tempfile.mkdtemp(prefix="agg_bench_"))
        cleanup = True
    else:
        out_dir = args.out
        out_dir.mkdir(parents=True, exist_ok=True)
        cleanup = False
    jsonl_path, parquet_path = out_dir / "pairs.jsonl", out_dir / "pairs.parquet"
    for path in (jsonl_path, parquet_path):
        if path.exists():
            parser.error(f"{path} already exists; choose a new --out")

    meter = Meter(use_tracemalloc=args.tracemalloc)
    print(f"aggregation benchmark: {args.prompts:,} prompts x {N_RESPONSES} responses, seed {args.seed}")
    print(f"  output: {out_dir}{' (temporary)' if cleanup else ''}")
    try:
        records, tasks, responses, mix = meter.run(
            "generate", lambda: generate(args.prompts, args.seed, args.response_chars)
        )
        print(
            f"  mix: {mix['judgements']:,} judgements = {mix['pairwise_judgements']:,} pairwise "
            f"({mix['pairwise_prompts']:,} prompts x 2 pairs x {VOTES} votes) + {mix['ranking_judgements']:,} "
            f"rankings ({mix['ranking_prompts']:,} prompts x {VOTES} votes, +1 on the last); "
            f"{N_REVIEWERS} reviewers ({N_RANDOM_REVIEWERS} random)"
        )

        def load() -> JudgementTable:
            table = JudgementTable()
            for fields in records():
                table.add(**fields)
            return table

        def stream_only() -> int:
            return sum(1 for _ in records())

        meter.run("stream", stream_only)
        table = meter.run("load", load)
        pairs = meter.run("expand_pairs", table.expand)

        def reliability_phase():
            gold = gold_pairs(task for task in tasks.values() if task.is_gold)
            result = reviewer_reliability(pairs, gold_pairs=gold)
            return result, vote_weights(pairs, reliability=result.reliability)

        reliability, weights = meter.run("reliability", reliability_phase)
        fit = meter.run("bradley_terry", lambda: bradley_terry(pairs, weights=weights))
        n_pairs, n_verdicts = len(pairs), len(fit.pairs)
        print(
            f"  {n_pairs:,} pair votes -> {n_verdicts:,} verdicts; EM {reliability.n_iter} iterations "
            f"(converged {reliability.converged}), BT {fit.n_iter} Newton iterations (converged {fit.converged})"
        )
        fit = weights = reliability = pairs = None  # free them before the build

        build = meter.run(
            "build_rows",
            lambda: build_rows(
                inputs=BuildInputs(judgements=table, tasks=tasks, responses=responses), params=BuildParams()
            ),
        )
        counts = build.counts
        print(f"  build: {counts['pairs']:,} rows over {counts['prompts']:,} prompts; dropped {counts['dropped']}")
        table = records = tasks = responses = None
        meter.run("write_jsonl", lambda: write_rows(build.rows, jsonl_path))
        n_rows = len(build.rows)
        build = None
        gc.collect()
        meter.run("export_parquet", lambda: export_rows(source=jsonl_path, file_format="parquet", out=parquet_path))
        sizes = {"jsonl": jsonl_path.stat().st_size, "parquet": parquet_path.stat().st_size}
        print(f"  files: {n_rows:,} rows; JSONL {_mb(sizes['jsonl'])}, Parquet {_mb(sizes['parquet'])}")
    finally:
        if cleanup:
            shutil.rmtree(out_dir, ignore_errors=True)

    report(meter, mix["judgements"], n_pairs, n_verdicts)
    return 0


def report(meter: Meter, n_judgements: int, n_pairs: int, n_verdicts: int) -> None:
    phases = {p.name: p for p in meter.phases}
    print()
    peak_note = "" if meter.peak_resettable else " (ru_maxrss: peaks are cumulative, not per phase)"
    print(f"Phases ({n_judgements:,} judgements, {n_pairs:,} pair votes, {n_verdicts:,} verdicts){peak_note}")
    header = f"{'phase':<16}{'wall s':>9}{'CPU s':>9}{'RSS start':>12}{'peak RSS':>12}{'peak-start':>12}"
    header += f"{'RSS end':>12}{'proc peak':>12}"
    if meter.use_tracemalloc:
        header += f"{'py peak':>12}"
    print(header)
    print("-" * len(header))
    for p in meter.phases:
        line = (
            f"{p.name:<16}{p.seconds:>9.2f}{p.cpu_seconds:>9.2f}{_mb(p.rss_start):>12}{_mb(p.peak):>12}"
            f"{_mb(p.peak - p.rss_start):>12}{_mb(p.rss_end):>12}{_mb(p.maxrss):>12}"
        )
        if meter.use_tracemalloc:
            line += f"{_mb(p.py_peak or 0):>12}"
        print(line)

    agg = [phases[n] for n in ("load", "expand_pairs", "reliability", "bradley_terry")]
    # The synthetic row stream's own cost (what reading the rows from the database costs in the app) is
    # timed alone in "stream" and taken out of "load", which leaves parsing the answers into the table.
    stream = phases["stream"]
    agg_s = sum(p.seconds for p in agg) - stream.seconds
    agg_cpu = sum(p.cpu_seconds for p in agg) - stream.cpu_seconds
    agg_peak = max(p.peak for p in agg)
    export = [phases[n] for n in ("write_jsonl", "export_parquet")]
    export_s, export_cpu = sum(p.seconds for p in export), sum(p.cpu_seconds for p in export)
    export_growth = max(p.peak - p.rss_start for p in export)
    print()
    print("Targets")
    ok = "ok" if agg_s <= AGG_TARGET_S else "MISSED"
    print(
        f"  aggregation (parse + expand + reliability + BT) {agg_s:6.2f} s (CPU {agg_cpu:.2f} s)   "
        f"target <= {AGG_TARGET_S:.0f} s   {ok}"
    )
    ok = "ok" if agg_peak <= AGG_TARGET_BYTES else "MISSED"
    print(f"  aggregation peak RSS (whole process)            {_mb(agg_peak):>8}   target <= 2,048 MB   {ok}")
    ok = "ok" if export_s <= EXPORT_TARGET_S else "MISSED"
    print(
        f"  export (write JSONL + Parquet)                  {export_s:6.2f} s (CPU {export_cpu:.2f} s)   "
        f"target <= {EXPORT_TARGET_S:.0f} s   {ok}"
    )
    print(
        f"  export memory: peak over start {_mb(export_growth)} "
        f"(write_jsonl +{_mb(export[0].peak - export[0].rss_start)}, "
        f"export_parquet +{_mb(export[1].peak - export[1].rss_start)}); flat = does not grow with the rows"
    )
    print(f"  parse = load - stream ({phases['load'].seconds:.2f} - {stream.seconds:.2f} s wall)")
    print(f"  for reference, build_rows (whole build from the loaded table) {phases['build_rows'].seconds:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
