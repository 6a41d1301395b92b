"""Tables that put runs side by side: a comparison's variants, and any runs' specs. Pure functions: no ORM.

``variant_table`` turns each variant's training figures (its training run's ``final_metrics``) and
its evaluate stage's report into one row per variant, one column per figure, with the best value of
each column marked; ``table_csv`` and ``table_markdown`` write that table for a spreadsheet and for
a report. ``spec_table`` lays runs' engine specs out one column per run, one row per (flattened)
field, and says which rows differ.

A figure a run lacks (an older engine, a stage that does not measure it) is ``None``, shown "—".
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from training.formatting import format_figure, format_learning_rate, format_metric
from training.models import is_metric_value

MISSING = "—"


@dataclass(frozen=True)
class Column:
    key: str  # the final metric's name (training), or "evaluate.<figure name>"
    label: str
    unit: str = ""  # for the header: "MiB", "s", "tokens/s"; evaluation figures carry their own ("share", "nats")
    better: str | None = None  # "higher", "lower", or None when no value is better than another
    group: str = "training"  # "training" or "evaluation"
    scale: float = 1.0  # shown value = stored value * scale (bytes -> MiB)
    figure_unit: str = ""  # an evaluation figure's unit, for ``format_figure``

    @property
    def heading(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def text(self, value: Any) -> str:
        if value is None:
            return MISSING
        if not is_metric_value(value):
            return str(value)
        if self.group == "evaluation":
            return format_figure(value, self.figure_unit)
        if not self.unit:
            return format_metric(value, self.key)
        # A column with a unit names it in its header, so every row is in that unit (MiB, not a mix
        # of MiB and GiB) and the cells carry the bare number, whole from 1,000 up (1,250, not 1.25 k).
        shown = value * self.scale
        return f"{shown:,.0f}" if abs(shown) >= 1000 else format_metric(shown)


MIB = 1 / 2**20
# What every training stage reports, in this order (the engine's final metrics).
TRAINING_COLUMNS = (
    Column("trainable_parameters", "Trainable parameters", better="lower"),
    Column("trainable_percent", "Trainable", unit="%", better="lower"),
    Column("peak_memory_bytes", "Peak memory", unit="MiB", better="lower", scale=MIB),
    Column("train_runtime", "Wall time", unit="s", better="lower"),
    Column("train_seconds_per_step", "Time per step", unit="s", better="lower"),
    Column("train_tokens_per_second", "Throughput", unit="tokens/s", better="higher"),
    Column("train_loss", "Training loss", better="lower"),
    Column("eval_loss", "Held-out loss", better="lower"),
)
# Final metrics that say how the trainer ran rather than how well it trained: not columns.
NOT_SHOWN = frozenset(
    {"total_parameters", "global_step", "epoch", "total_flos", "train_samples_per_second"}
    | {"train_steps_per_second", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"}
)
MAX_EXTRA_COLUMNS = 10


def variant_table(variants: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per variant: ``variants`` is ``[{"variant", "status", "metrics": final metrics of its
    training run, "report": its evaluate stage's report or None, ...}]`` (other keys are kept on the row).

    Returns ``{"columns": [Column], "rows": [{**variant, "cells": [{"value", "text", "best"}]}]}``.
    A column's best value (``better``) is marked on every row that has it, once two rows have values.
    """
    columns = [*TRAINING_COLUMNS, *_extra_columns(variants), *_evaluation_columns(variants)]
    if any(variant.get("report") for variant in variants):
        columns.append(Column("evaluate.verdict", "Verdict", group="evaluation"))
    rows = []
    for variant in variants:
        values = [_value(column, variant) for column in columns]
        rows.append(
            {**variant, "cells": [{"value": v, "text": c.text(v)} for c, v in zip(columns, values, strict=True)]}
        )
    for index, column in enumerate(columns):
        present = [row["cells"][index]["value"] for row in rows if is_metric_value(row["cells"][index]["value"])]
        best = None
        if column.better and len(present) >= 2 and len(set(present)) > 1:
            best = max(present) if column.better == "higher" else min(present)
        for row in rows:
            row["cells"][index]["best"] = best is not None and row["cells"][index]["value"] == best
    return {"columns": columns, "rows": rows}


def _value(column: Column, variant: dict[str, Any]) -> Any:
    if column.group == "training":
        value = (variant.get("metrics") or {}).get(column.key)
        return value if is_metric_value(value) else None
    report = variant.get("report") or {}
    name = column.key.removeprefix("evaluate.")
    if name == "verdict":
        return (report.get("summary") or {}).get("verdict")
    figure = next((f for f in report.get("figures") or [] if f.get("name") == name), None)
    value = figure.get("new") if figure else None
    return value if is_metric_value(value) else None


def _extra_columns(variants: list[dict[str, Any]]) -> list[Column]:
    """The stage's own final metrics (DPO's reward accuracy, KTO's...), those most variants have first."""
    known = {column.key for column in TRAINING_COLUMNS} | NOT_SHOWN
    counts: dict[str, int] = {}
    for variant in variants:
        for name, value in (variant.get("metrics") or {}).items():
            if name not in known and is_metric_value(value):
                counts[name] = counts.get(name, 0) + 1
    names = sorted(counts, key=lambda name: (-counts[name], name))[:MAX_EXTRA_COLUMNS]
    return [Column(name, name, better=_better(name)) for name in names]


def _better(name: str) -> str | None:
    """Which way a stage metric improves, where its name says so; None leaves it unmarked."""
    last = name.rsplit("/", 1)[-1]
    if "loss" in last or last in ("kl", "perplexity"):
        return "lower"
    if any(word in last for word in ("accurac", "margin", "reward", "score")):
        return "higher"
    return None


def _evaluation_columns(variants: list[dict[str, Any]]) -> list[Column]:
    """One column per figure of the evaluate stages' reports, in the first report's order."""
    columns: dict[str, Column] = {}
    for variant in variants:
        for figure in (variant.get("report") or {}).get("figures") or []:
            name = figure.get("name")
            if name and f"evaluate.{name}" not in columns:
                unit = figure.get("unit") or ""
                columns[f"evaluate.{name}"] = Column(
                    f"evaluate.{name}",
                    figure.get("label") or name,
                    unit="" if unit in ("share", "") else unit,
                    better=figure.get("better") if figure.get("better") in ("higher", "lower") else None,
                    group="evaluation",
                    figure_unit=unit,
                )
    return list(columns.values())


def table_csv(table: dict[str, Any]) -> str:
    """The table for a spreadsheet: stored values as they are (bytes, seconds, shares), one header per key."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["variant", "status", "round", "run", *(column.key for column in table["columns"])])
    for row in table["rows"]:
        values = ["" if cell["value"] is None else cell["value"] for cell in row["cells"]]
        writer.writerow([row["variant"], row["status"], row.get("round_id", ""), row.get("run_id", ""), *values])
    return out.getvalue()


def table_markdown(table: dict[str, Any], *, title: str, facts: list[str]) -> str:
    """The table as a Markdown report: a title, the shared setup (``facts``), and the values as the
    page shows them, units in the headers, the best of each column in bold."""
    headings = ["Variant", "Status", *(column.heading for column in table["columns"])]
    lines = [f"## {_cell(title)}", "", *(f"- {_cell(fact)}" for fact in facts), ""]
    lines.append("| " + " | ".join(_cell(heading) for heading in headings) + " |")
    lines.append("|" + "|".join(["---", "---"] + ["---:"] * len(table["columns"])) + "|")
    for row in table["rows"]:
        cells = [f"**{_cell(c['text'])}**" if c["best"] else _cell(c["text"]) for c in row["cells"]]
        lines.append("| " + " | ".join([_cell(row["variant"]), _cell(row["status"]), *cells]) + " |")
    lines += ["", "Best value of each column in bold; — where a run did not report the figure."]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text that cannot break a Markdown table row (a pipe or a line break in a name), nor become
    HTML where the report is rendered (a name with a tag in it reads as written)."""
    text = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return text.replace("<", "&lt;").replace(">", "&gt;")


# --- runs side by side ------------------------------------------------------------------------------

# Spec fields the platform fills with each run's own files (exports, output directory): they always
# differ between runs, so they are shown but not flagged as differences.
PER_RUN_FIELDS = frozenset(
    {"output_dir", "dataset", "eval_dataset", "resume_from", "prompts", "preferences", "perplexity_texts"}
)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys (``adapter.method``); lists and scalars stay values."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key in sorted(value):
            flat.update(flatten(value[key], f"{prefix}{key}."))
        return flat
    return {prefix.removesuffix("."): value}


def spec_table(facts: list[dict[str, Any]], specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a side-by-side table, one column per run: first the ``facts`` (``{label: text}`` per
    run: stage, status, snapshot...), then every other spec field any run has, flattened and sorted.

    Each row is ``{"field", "values": [text per run], "differs": bool, "per_run": bool}``.
    """
    rows = []
    for label in dict.fromkeys(label for fact in facts for label in fact):
        values = [str(fact.get(label, MISSING)) for fact in facts]
        rows.append({"field": label, "values": values, "differs": len(set(values)) > 1, "per_run": False})
    flat = [flatten(spec) for spec in specs]
    shown = {row["field"] for row in rows}
    for field in sorted({name for spec in flat for name in spec} - shown):
        values = [_spec_text(field, spec[field]) if field in spec else MISSING for spec in flat]
        per_run = field in PER_RUN_FIELDS
        rows.append(
            {"field": field, "values": values, "differs": not per_run and len(set(values)) > 1, "per_run": per_run}
        )
    return rows


def _spec_text(field: str, value: Any) -> str:
    if field.rsplit(".", 1)[-1] == "learning_rate" and is_metric_value(value) and value > 0:
        return format_learning_rate(value)  # 2e-4, as the launch form and the run page write it
    return value if isinstance(value, str) else json.dumps(value)
