"""The evaluate stage's inputs, and where its verdict goes.

In a round, the evaluate stage compares the round's newest policy with the round's base model on
the snapshot's held-out (test) rows: its pairs, its distinct prompts, and its texts for
forgetting (or, in a round that pretrains, the slice of the corpus the pretrain stage held out;
or a corpus the manager names); benchmarks run when their data is on this machine
(``make benchmark-data``). The reward model that judges the win rate is the round's own reward
stage's, or the registered one the round names. When the run succeeds, its report is kept on the
run (``final_metrics["report"]``) and on the evaluated model (``ModelArtifact.evaluation["verdict"]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

from training import stage_data
from training.engine.benchmarks import BENCHMARK_NAMES, TRUTHFULQA_NAMES, missing_benchmark_data
from training.engine.data import DataError
from training.engine.stages import stage_names
from training.errors import TrainingError
from training.models import ModelArtifact, Round, TrainingRun


def evaluation_wiring(
    *,
    kind: str,
    files: dict[str, str],
    base_model: ModelArtifact | None,
    reward_model_path: str | None,
    benchmark_data: str | None,
) -> dict[str, Any]:
    """The spec fields the platform sets for an evaluate stage (``files``: preferences, prompts, texts)."""
    wiring: dict[str, Any] = {"kind": kind, "preferences": files.get("preferences")}
    if kind == "policy":
        wiring.update(prompts=files.get("prompts"), perplexity_texts=files.get("texts"), reward_model=reward_model_path)
        if base_model is not None:
            wiring.update(reference_model=base_model.path, reference_gguf_file=base_model.gguf_file or None)
        wiring["benchmark_data"] = benchmark_data
    return wiring


def evaluation_files(*, run: TrainingRun, directory: Path) -> dict[str, str]:
    """The held-out files of an evaluate run: from its snapshot's test split, and its corpus if it names one.

    Raises ``TrainingError`` when there is nothing held out to evaluate on.
    """
    files: dict[str, str] = {}
    if run.dataset is not None:
        if not run.dataset.path.is_file():
            raise TrainingError("The run's dataset snapshot file is missing.")
        try:
            files = stage_data.export_evaluation_files(
                kind=run.dataset.kind,
                snapshot=run.dataset.path,
                directory=directory,
                # An evaluation of its own was checked at launch: the model did not train on the snapshot.
                all_rows_when_none_held_out=run.round_id is not None and run.round.preset == Round.Preset.EVALUATION,
            )
        except stage_data.StageDataError as error:
            raise TrainingError(str(error)) from None
    pretrain_slice = _pretrain_held_out_slice(run)
    if pretrain_slice is not None:
        files["texts"] = pretrain_slice
    if run.text_dataset:
        if not Path(run.text_dataset).exists():
            raise TrainingError(f"The evaluation corpus {run.text_dataset} does not exist on this machine.")
        try:
            # Paragraph by paragraph: a .txt file would otherwise be one text, cut to max_length.
            files["texts"] = stage_data.corpus_pieces_file(
                source=run.text_dataset, path=directory / "corpus.jsonl", text_field="text"
            )
        except (stage_data.StageDataError, DataError) as error:
            raise TrainingError(str(error)) from None
    return files


def _pretrain_held_out_slice(run: TrainingRun) -> str | None:
    """The slice of the corpus the round's pretrain stage held out (``stage_data.split_text_corpus``)."""
    if run.round_id is None:
        return None
    earlier = run.round.runs.filter(position__lt=run.position, stage__in=stage_names(trains_on="text"))
    earlier = earlier.exclude(workdir="")
    for pretrain in earlier.order_by("-position"):
        held_out = Path(pretrain.workdir) / "data" / "held_out.jsonl"
        if held_out.is_file():
            return str(held_out)
    return None


def benchmark_data_dir() -> str:
    """Where the benchmarks' data is (or would be: the engine notes a benchmark whose data is missing)."""
    return str(Path(settings.BENCHMARK_DATA_DIR))


def default_benchmarks(data_dir: str) -> list[str]:
    """The benchmarks an evaluate stage runs when its settings name none: those whose data is here
    (TruthfulQA only when asked for, with its file)."""
    names = [name for name in BENCHMARK_NAMES if name not in TRUTHFULQA_NAMES]
    missing = missing_benchmark_data(names=names, data_dir=data_dir)
    return [name for name in names if name not in missing]


def model_record_evaluation(*, model: ModelArtifact, run: TrainingRun, report: dict[str, Any]) -> None:
    """Keep an evaluation's verdict and figures on the model it evaluated (the answers stay on the run).

    Runs inside the caller's transaction (``run_succeed``).
    """
    kept = {key: value for key, value in report.items() if key != "examples"}
    model.evaluation = {**model.evaluation, "verdict": {"run": run.pk, "round": run.round_id, **kept}}
    model.save(update_fields=["evaluation"])
