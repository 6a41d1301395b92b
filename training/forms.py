"""Forms of the training pages. They parse the request; the services check and write."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from django import forms

from labeling.models import Campaign, PreferenceDataset, Project
from rlhf_platform import json_limits
from training.engine.benchmarks import BENCHMARK_NAMES, DEFAULT_LIMIT
from training.engine.stages import STAGES
from training.engine.stages.evaluate_spec import BENCHMARK_LABELS
from training.formatting import format_learning_rate
from training.models import Comparison, ModelArtifact, Round, Stage, Sweep
from training.services import comparisons
from training.services.generation import GENERATION_FIELDS
from training.services.rounds import PRESET_STAGES
from training.services.sweeps import DEFAULT_RANGES, MAX_TRIALS, METRICS, SWEEP_STAGES
from training.specs import WIRING_FIELDS, default_learning_rate

ADAPTERS = [
    ("lora", "LoRA (default: a small adapter on every linear layer)"),
    ("full", "Full fine-tuning (every weight)"),
    ("qlora", "QLoRA (4-bit base; needs a CUDA GPU)"),
    ("ia3", "IA3 (rescaling vectors, smallest)"),
    ("bottleneck", "Bottleneck adapter (small networks inside each layer)"),
    ("freeze", "Freeze all but the last layers"),
]
# How the learning-rate hint names each adapter method ("the defaults with LoRA").
ADAPTER_NAMES = {"lora": "LoRA", "full": "full fine-tuning", "qlora": "QLoRA", "ia3": "IA3", "freeze": "freezing"}
ADAPTER_NAMES["bottleneck"] = "a bottleneck adapter"
# What the "One stage" preset can run: every stage that trains.
TRAINING_STAGES = [(name, label) for name, label in Stage.choices if STAGES[name].trains_on is not None]
PRESETS = [(Round.Preset.SFT_DPO, "SFT → DPO"), (Round.Preset.SFT_REWARD_PPO, "SFT → reward model → PPO")]
PRESETS += [(Round.Preset.SFT_REWARD_RLOO, "SFT → reward model → RLOO")]
PRESETS += [(Round.Preset.SFT_REWARD_GRPO, "SFT → reward model → GRPO")]
PRESETS += [(Round.Preset.SFT_KTO, "SFT → KTO")]
PRESETS += [(Round.Preset.PRETRAIN_SFT, "Continued pretraining → SFT"), (Round.Preset.SINGLE, "One stage")]
# The launch form's hyperparameter fields: blank means the engine's default for each stage.
HYPERPARAMETERS = ("learning_rate", "max_steps", "epochs", "batch_size", "beta")


def _json_object(text: str, field: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json_limits.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise forms.ValidationError(f"Not valid JSON: {error.msg} ({where}).") from None
    except json_limits.NestedTooDeeply as error:
        raise forms.ValidationError(str(error)) from None
    if not isinstance(value, dict):
        raise forms.ValidationError(f"{field} must be a JSON object.")
    return value


class RoundLaunchForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Default: the stages and the base model.")
    preset = forms.ChoiceField(choices=PRESETS, initial=Round.Preset.SFT_DPO)
    stage = forms.ChoiceField(choices=[("", "—"), *TRAINING_STAGES], required=False, help_text="For “One stage” only.")
    base_model = forms.ModelChoiceField(
        queryset=ModelArtifact.objects.exclude(kind=ModelArtifact.Kind.REWARD_MODEL), empty_label=None
    )
    dataset = forms.ModelChoiceField(
        queryset=PreferenceDataset.objects.all(),
        required=False,
        help_text="A preference snapshot (SFT trains on its chosen responses) or an SFT snapshot.",
    )
    pretrain_dataset = forms.CharField(
        max_length=1000,
        required=False,
        label="Pretraining corpus path",
        help_text="Pretraining only: a .txt file or directory, JSONL or Parquet of text on the server, inside the "
        "data directories.",
    )
    pretrain_file = forms.FileField(
        required=False,
        label="…or upload a pretraining corpus",
        help_text="A .txt, .jsonl or .parquet file (UTF-8 text), instead of a path on the server.",
        widget=forms.FileInput(attrs={"accept": ".txt,.jsonl,.parquet"}),
    )
    reward_model = forms.ModelChoiceField(
        queryset=ModelArtifact.objects.filter(kind=ModelArtifact.Kind.REWARD_MODEL),
        required=False,
        help_text="When the round trains none: PPO, RLOO and GRPO train against it, and evaluation judges win rates "
        "with it.",
    )
    evaluate = forms.BooleanField(
        required=False,
        initial=True,
        label="End with an evaluation",
        help_text="End with an evaluation: the new model against the base on the snapshot's held-out rows, "
        "with a verdict.",
    )
    evaluation_corpus = forms.CharField(
        max_length=1000,
        required=False,
        help_text="Evaluation: a text file or directory on the server, inside the data directories, to measure "
        "forgetting on. Blank: the held-out texts.",
    )
    evaluation_file = forms.FileField(
        required=False,
        label="…or upload an evaluation corpus",
        help_text="A .txt, .jsonl or .parquet file (UTF-8 text), instead of a path on the server.",
        widget=forms.FileInput(attrs={"accept": ".txt,.jsonl,.parquet"}),
    )
    adapter = forms.ChoiceField(choices=ADAPTERS, initial="lora")
    # Its placeholder and help name the default each stage will train with (learning_rate_hints).
    learning_rate = forms.FloatField(required=False, min_value=0, help_text="Blank: the stage's default.")
    max_steps = forms.IntegerField(required=False, min_value=1, help_text="Blank: run the epochs.")
    epochs = forms.FloatField(required=False, min_value=0.01, help_text="Blank: 1.")
    batch_size = forms.IntegerField(required=False, min_value=1, help_text="Blank: 8.")
    beta = forms.FloatField(
        required=False,
        min_value=0,
        help_text="KL strength of DPO and KTO (blank: 0.1), RLOO (0.05) and GRPO (0).",
    )
    advanced = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "placeholder": '{"lr_scheduler": "cosine"}'}),
        help_text="Any other engine setting, for every stage, as JSON (see the defaults below).",
    )
    stage_settings = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "placeholder": '{"dpo": {"beta": 0.2}}'}),
        help_text="Settings for one stage only, as JSON keyed by stage.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        preset, stage, adapter = (self._chosen(name) for name in ("preset", "stage", "adapter"))
        hint = learning_rate_hint(_round_stages(preset, stage), adapter)
        self.fields["learning_rate"].help_text = hint["help"]
        self.fields["learning_rate"].widget.attrs["placeholder"] = hint["placeholder"]

    def _chosen(self, name: str) -> str:
        """A choice field's value as the page shows it: the submitted one, else the initial one."""
        if self.is_bound:
            return self.data.get(name) or ""
        return str(self.get_initial_for_field(self.fields[name], name) or "")

    def learning_rate_hints(self) -> dict[str, dict[str, dict[str, dict[str, str]]]]:
        """Every hint the page may need, by preset, then stage ("" unless the preset is one stage), then adapter.

        The launch page's script swaps the learning-rate field's placeholder and help for the one
        that matches the chosen preset, stage and adapter.
        """
        hints = {}
        for preset, _label in PRESETS:
            stages = ["", *(name for name, _label in TRAINING_STAGES)] if preset == Round.Preset.SINGLE else [""]
            hints[preset] = {
                stage: {
                    adapter: learning_rate_hint(_round_stages(preset, stage), adapter) for adapter, _name in ADAPTERS
                }
                for stage in stages
            }
        return hints

    def clean_advanced(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["advanced"], "advanced")

    def clean_stage_settings(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["stage_settings"], "stage_settings")

    def launch_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``round_launch`` (without who launches)."""
        data = self.cleaned_data
        settings = {name: data[name] for name in HYPERPARAMETERS if data.get(name) is not None}
        settings["adapter"] = data["adapter"]
        if data["advanced"]:
            settings["advanced"] = data["advanced"]
        return {
            "name": data["name"],
            "preset": data["preset"],
            "stage": data["stage"] or None,
            "base_model": data["base_model"],
            "dataset": data["dataset"],
            "pretrain_dataset": data["pretrain_dataset"].strip(),
            "reward_model": data["reward_model"],
            "settings": settings,
            "stage_settings": data["stage_settings"],
            "evaluate": data["evaluate"],
            "evaluation_corpus": data["evaluation_corpus"].strip(),
            "pretrain_upload": data.get("pretrain_file"),
            "evaluation_upload": data.get("evaluation_file"),
        }


def _round_stages(preset: str, stage: str) -> list[str]:
    if preset == Round.Preset.SINGLE:
        return [stage] if stage in dict(TRAINING_STAGES) else []
    return list(PRESET_STAGES.get(preset, []))


def learning_rate_hint(stages: list[str], adapter: str) -> dict[str, str]:
    """The learning-rate field's placeholder and help for a round of ``stages`` trained with ``adapter``."""
    if not stages or adapter not in ADAPTER_NAMES:
        return {"placeholder": "", "help": "Blank: each stage's default for the adapter method."}
    rates = [format_learning_rate(default_learning_rate(stage, adapter)) for stage in stages]
    if len(stages) == 1:
        text = f"Blank: {rates[0]}, the default for {STAGES[stages[0]].noun} with {ADAPTER_NAMES[adapter]}."
    else:
        each = ", ".join(f"{rate} for {STAGES[stage].noun}" for stage, rate in zip(stages, rates, strict=True))
        text = f"Blank: {each} (the defaults with {ADAPTER_NAMES[adapter]}). A value here applies to every stage."
    return {"placeholder": " / ".join(rates), "help": text}


def engine_defaults() -> dict[str, list[dict[str, Any]]]:
    """Per training stage, the engine's settings with their defaults and help, for the "advanced" panel."""
    defaults = {}
    for stage in Stage.values:
        rows = []
        for spec_field in dataclasses.fields(STAGES[stage].spec):
            if spec_field.name in WIRING_FIELDS:
                continue
            if spec_field.default is not dataclasses.MISSING:
                default = spec_field.default
            elif spec_field.default_factory is not dataclasses.MISSING:
                made = spec_field.default_factory()
                default = dataclasses.asdict(made) if dataclasses.is_dataclass(made) else made
            else:
                continue
            help_text = spec_field.metadata.get("help", "")
            shown = json.dumps(default)
            if spec_field.name == "learning_rate":
                full, adapter = (format_learning_rate(default_learning_rate(stage, m)) for m in ("full", "lora"))
                shown = f"{full} full or freeze, {adapter} lora, qlora, ia3 or bottleneck"
            rows.append({"name": spec_field.name, "default": shown, "help": help_text})
        defaults[stage] = rows
    return defaults


class GenerateForm(forms.Form):
    model = forms.ModelChoiceField(
        queryset=ModelArtifact.objects.exclude(kind=ModelArtifact.Kind.REWARD_MODEL), empty_label=None
    )
    compare_with = forms.ModelChoiceField(
        queryset=ModelArtifact.objects.exclude(kind=ModelArtifact.Kind.REWARD_MODEL),
        required=False,
        help_text="The previous policy: each task then pairs the new model's answer against its answer (an A/B test).",
    )
    source_campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.select_related("project"), required=False, help_text="Answer this campaign's prompts."
    )
    prompts = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "class": "mono"}),
        help_text="…or these prompts, one per line.",
    )
    project = forms.ModelChoiceField(
        queryset=Project.objects.all(), required=False, help_text="Default: the source campaign's project."
    )
    campaign_name = forms.CharField(max_length=200, help_text="The new campaign the candidates go to.")
    num_candidates = forms.IntegerField(initial=2, min_value=1, max_value=16, help_text="Answers per prompt (K).")
    temperature = forms.FloatField(initial=0.8, min_value=0.01)
    top_p = forms.FloatField(initial=0.95, min_value=0.01, max_value=1)
    max_new_tokens = forms.IntegerField(initial=256, min_value=1, max_value=4096)

    def job_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``generation_job_create`` (without who launches)."""
        data = self.cleaned_data
        prompts = [line.strip() for line in data["prompts"].splitlines() if line.strip()]
        params = {name: data[name] for name in GENERATION_FIELDS if data.get(name) is not None}
        return {
            "model": data["model"],
            "compare_with": data["compare_with"],
            "source_campaign": data["source_campaign"],
            "prompts": [{"prompt": prompt} for prompt in prompts] or None,
            "project": data["project"],
            "campaign_name": data["campaign_name"],
            "params": params,
        }


class EvaluationForm(forms.Form):
    """Evaluate one registered model, alone or against another; the fields of ``round_launch_evaluation``."""

    compare_with = forms.ModelChoiceField(
        queryset=ModelArtifact.objects.exclude(kind=ModelArtifact.Kind.REWARD_MODEL),
        required=False,
        help_text="A baseline policy: every figure is taken on both models, with the change and its interval.",
    )
    dataset = forms.ModelChoiceField(
        queryset=PreferenceDataset.objects.all(),
        required=False,
        help_text="Its held-out split (all of its rows when it holds none out and the model never trained on it).",
    )
    reward_model = forms.ModelChoiceField(
        queryset=ModelArtifact.objects.filter(kind=ModelArtifact.Kind.REWARD_MODEL),
        required=False,
        help_text="Judges the answers: mean reward and the win rate against the baseline.",
    )
    evaluation_corpus = forms.CharField(
        max_length=1000,
        required=False,
        help_text="A text file or directory on the server, inside the data directories, to measure perplexity on.",
    )
    evaluation_file = forms.FileField(
        required=False,
        label="…or upload a corpus",
        help_text="A .txt, .jsonl or .parquet file (UTF-8 text), instead of a path on the server.",
        widget=forms.FileInput(attrs={"accept": ".txt,.jsonl,.parquet"}),
    )
    benchmarks = forms.MultipleChoiceField(
        choices=[(name, BENCHMARK_LABELS.get(name, name)) for name in BENCHMARK_NAMES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Through lm-evaluation-harness, on local data (make benchmark-data). TruthfulQA needs its file.",
    )
    truthfulqa = forms.CharField(
        max_length=1000,
        required=False,
        label="TruthfulQA file",
        help_text="A local file of TruthfulQA's multiple-choice data in its published format (question, mc1_targets, "
        "mc2_targets; JSON, JSONL, Parquet or a dataset directory): no package ships it.",
    )
    benchmark_limit = forms.IntegerField(
        initial=DEFAULT_LIMIT,
        min_value=1,
        required=False,
        help_text=f"Items per benchmark, the same for both models. At {DEFAULT_LIMIT}, the five benchmarks take "
        "about 3 min for two 135M models on a CPU.",
    )
    max_new_tokens = forms.IntegerField(initial=128, min_value=1, max_value=4096, help_text="Tokens per answer.")
    advanced = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "class": "mono", "placeholder": '{"temperature": 0.7}'}),
        help_text="Any other setting of the evaluate stage, as JSON.",
    )

    def __init__(self, *args: Any, model: ModelArtifact, available_benchmarks: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self.fields["compare_with"].queryset = self.fields["compare_with"].queryset.exclude(pk=model.pk)
        self.fields["benchmarks"].initial = available_benchmarks
        if model.kind == ModelArtifact.Kind.REWARD_MODEL:
            for name in (
                "compare_with",
                "reward_model",
                "evaluation_corpus",
                "evaluation_file",
                "benchmarks",
                "benchmark_limit",
                "truthfulqa",
            ):
                del self.fields[name]
            self.fields["max_new_tokens"].required = False
            self.fields["dataset"].help_text = "Preference pairs: its held-out split, or all of it."

    def clean_advanced(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["advanced"], "advanced")

    def evaluation_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``round_launch_evaluation`` (without who launches)."""
        data = self.cleaned_data
        advanced = dict(data["advanced"])
        for name in ("benchmarks", "benchmark_limit", "max_new_tokens"):
            # An empty list of benchmarks is a choice too: none, rather than every one whose data is here.
            if name in self.fields and data.get(name) is not None:
                advanced.setdefault(name, data[name])
        if (data.get("truthfulqa") or "").strip():
            advanced.setdefault("truthfulqa", data["truthfulqa"].strip())
        return {
            "model": self.model,
            "compare_with": data.get("compare_with"),
            "dataset": data["dataset"],
            "reward_model": data.get("reward_model"),
            "evaluation_corpus": (data.get("evaluation_corpus") or "").strip(),
            "evaluation_upload": data.get("evaluation_file"),
            "settings": {"advanced": advanced} if advanced else {},
        }


# --- comparisons --------------------------------------------------------------------------------


def _variant_label(name: str) -> str:
    if name in STAGES:
        return STAGES[name].label
    return dict(ADAPTERS).get(name, name)  # a method the engine gains before this list: by its name


class ComparisonLaunchForm(forms.Form):
    """The fields of ``comparison_launch``. The variants on offer come from the engine's tables
    (``training.services.comparisons``); qlora is on offer and left unticked."""

    name = forms.CharField(max_length=200, required=False, help_text="Default: the stage or method and the variants.")
    kind = forms.ChoiceField(
        choices=Comparison.Kind.choices, initial=Comparison.Kind.ADAPTERS, widget=forms.RadioSelect, label="Compare"
    )
    stage = forms.ChoiceField(
        choices=[], required=False, initial="sft", help_text="Adapter methods: the stage every variant runs."
    )
    adapter_variants = forms.MultipleChoiceField(
        choices=[], required=False, widget=forms.CheckboxSelectMultiple, label="Adapter methods"
    )
    adapter = forms.ChoiceField(
        choices=[], required=False, initial="lora", help_text="Alignment methods: the adapter every variant uses."
    )
    alignment_variants = forms.MultipleChoiceField(
        choices=[], required=False, widget=forms.CheckboxSelectMultiple, label="Alignment methods"
    )
    base_model = forms.ModelChoiceField(
        queryset=ModelArtifact.objects.exclude(kind=ModelArtifact.Kind.REWARD_MODEL), empty_label=None
    )
    dataset = forms.ModelChoiceField(queryset=PreferenceDataset.objects.all(), help_text="Every variant trains on it.")
    reward_model = forms.ModelChoiceField(
        queryset=ModelArtifact.objects.filter(kind=ModelArtifact.Kind.REWARD_MODEL),
        required=False,
        help_text="For the variants that train against one (PPO); evaluation judges win rates with it.",
    )
    seed = forms.IntegerField(initial=42, help_text="The same for every variant.")
    max_steps = forms.IntegerField(required=False, min_value=1, help_text="Budget: optimizer steps per variant.")
    epochs = forms.FloatField(required=False, min_value=0.01, help_text="…or passes over the data, not both.")
    learning_rate = forms.FloatField(
        required=False,
        min_value=0,
        help_text="Blank: each variant's default (adapters: about 10 times full's).",
    )
    batch_size = forms.IntegerField(required=False, min_value=1, help_text="Blank: 8.")
    evaluate = forms.BooleanField(
        required=False, initial=True, label="Evaluate each variant", help_text="Against the base, with a verdict."
    )
    advanced = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "placeholder": '{"max_length": 512}'}),
        help_text="Any other engine setting, for every variant, as JSON.",
    )
    stage_settings = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "placeholder": '{"dpo": {"beta": 0.2}}'}),
        help_text="Settings for one stage only, as JSON keyed by stage.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        adapters, alignment = comparisons.adapter_variants(), comparisons.alignment_variants()
        self.fields["stage"].choices = [(name, STAGES[name].label) for name in comparisons.comparison_stages()]
        self.fields["adapter"].choices = [(name, _variant_label(name)) for name in adapters]
        self.fields["adapter_variants"].choices = [(name, _variant_label(name)) for name in adapters]
        self.fields["adapter_variants"].initial = [name for name in adapters if name != "qlora"]
        self.fields["alignment_variants"].choices = [(name, _variant_label(name)) for name in alignment]
        self.fields["alignment_variants"].initial = alignment

    def clean_advanced(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["advanced"], "advanced")

    def clean_stage_settings(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["stage_settings"], "stage_settings")

    def launch_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``comparison_launch`` (without who launches)."""
        data = self.cleaned_data
        adapters = data["kind"] == Comparison.Kind.ADAPTERS
        settings = {name: data[name] for name in ("learning_rate", "batch_size") if data.get(name) is not None}
        if data["advanced"]:
            settings["advanced"] = data["advanced"]
        return {
            "name": data["name"],
            "kind": data["kind"],
            "variants": data["adapter_variants"] if adapters else data["alignment_variants"],
            "stage": data["stage"] if adapters else None,
            "adapter": None if adapters else data["adapter"],
            "base_model": data["base_model"],
            "dataset": data["dataset"],
            "reward_model": data["reward_model"],
            "seed": data["seed"],
            "max_steps": data["max_steps"],
            "epochs": data["epochs"],
            "settings": settings,
            "stage_settings": data["stage_settings"],
            "evaluate": data["evaluate"],
        }


class RunIdsField(forms.Field):
    """Every value of a repeated query parameter (``?run=1&run=2``) as whole numbers."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        ids = []
        for raw in value or []:
            try:
                ids.append(int(str(raw).strip()))
            except ValueError:
                raise forms.ValidationError(f"Run ids are whole numbers; {str(raw)[:20]!r} is not one.") from None
        return ids


class RunsCompareForm(forms.Form):
    """The side-by-side page's query: the runs, and whether to show only the rows that differ."""

    run = RunIdsField(required=False)
    differing = forms.BooleanField(required=False)


class SweepLaunchForm(forms.Form):
    """A sweep: the stage, its data and models, a fixed set of parameter rows (each searched or not,
    with its range), the trials and the metric, and the fixed settings every trial shares."""

    name = forms.CharField(max_length=200, required=False, help_text="Default: the stage and the base model.")
    stage = forms.ChoiceField(choices=[(name, Stage(name).label) for name in SWEEP_STAGES], initial="dpo")
    base_model = forms.ModelChoiceField(
        queryset=ModelArtifact.objects.exclude(kind=ModelArtifact.Kind.REWARD_MODEL), empty_label=None
    )
    dataset = forms.ModelChoiceField(
        queryset=PreferenceDataset.objects.all(), empty_label=None, help_text="Needs a test split for evaluation."
    )
    reward_model = forms.ModelChoiceField(
        queryset=ModelArtifact.objects.filter(kind=ModelArtifact.Kind.REWARD_MODEL),
        required=False,
        help_text="PPO trains against it.",
    )
    n_trials = forms.IntegerField(initial=8, min_value=1, max_value=MAX_TRIALS, label="Trials")
    parallel = forms.IntegerField(
        initial=1, min_value=1, label="Trials at once", help_text="Queued together; one worker runs them in turn."
    )
    metric = forms.ChoiceField(
        choices=[(metric.name, f"{metric.name}: {metric.label}") for metric in METRICS.values()],
        initial="preference_accuracy",
        help_text="Evaluation figures come from the evaluate stage that ends each trial.",
    )
    direction = forms.ChoiceField(
        choices=[("", "The metric's (lower loss, higher accuracy)"), *Sweep.Direction.choices], required=False
    )
    pruner = forms.ChoiceField(choices=Sweep.Pruner.choices, initial=Sweep.Pruner.NONE)
    prune_on = forms.ChoiceField(
        choices=[("loss", "Training loss (each logging step)"), ("eval_loss", "Held-out loss (each eval_steps)")],
        initial="loss",
        label="Prune on",
    )
    seed = forms.IntegerField(initial=0, help_text="The same seed and results ask the same trials.")
    adapter = forms.ChoiceField(choices=ADAPTERS, initial="lora")
    max_steps = forms.IntegerField(required=False, help_text="Unless searched; empty: the epochs.")
    batch_size = forms.IntegerField(required=False, min_value=1)
    max_length = forms.IntegerField(required=False, min_value=1)
    logging_steps = forms.IntegerField(required=False, min_value=1, help_text="The pruner reads the loss at these.")
    eval_steps = forms.IntegerField(required=False, min_value=1, help_text="For pruning on the held-out loss.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for index, (name, default) in enumerate(DEFAULT_RANGES.items()):
            number = forms.FloatField if default["type"] == "float" else forms.IntegerField
            self.fields[f"p{index}_on"] = forms.BooleanField(
                required=False, initial=name == "learning_rate", label=f"Search {name}"
            )
            self.fields[f"p{index}_low"] = number(required=False, initial=default["low"], label=f"{name} from")
            self.fields[f"p{index}_high"] = number(required=False, initial=default["high"], label=f"{name} to")
            self.fields[f"p{index}_log"] = forms.BooleanField(required=False, initial=default["log"], label="log scale")

    def parameter_rows(self) -> list[dict[str, Any]]:
        """The rows as the page lays them out: the spec field and its four fields."""
        return [
            {"name": name, **{key: self[f"p{index}_{key}"] for key in ("on", "low", "high", "log")}}
            for index, name in enumerate(DEFAULT_RANGES)
        ]

    def searched_rows(self) -> list[int]:
        """The form's row of each searched parameter, in the order the search space lists them."""
        return [index for index in range(len(DEFAULT_RANGES)) if self.cleaned_data.get(f"p{index}_on")]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.is_bound and not self.errors and not self.searched_rows():
            raise forms.ValidationError("Tick at least one parameter to search.")
        for index in self.searched_rows():
            for key in ("low", "high"):
                if data.get(f"p{index}_{key}") is None:
                    self.add_error(f"p{index}_{key}", "Required for a searched parameter.")
        return data

    def launch_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        names = list(DEFAULT_RANGES)
        search_space = [
            {
                "name": names[index],
                "type": DEFAULT_RANGES[names[index]]["type"],
                "low": data[f"p{index}_low"],
                "high": data[f"p{index}_high"],
                "log": data[f"p{index}_log"],
            }
            for index in self.searched_rows()
        ]
        settings = {name: data[name] for name in ("adapter", "max_steps", "batch_size", "max_length", "logging_steps")}
        settings = {name: value for name, value in settings.items() if value is not None}
        if data["eval_steps"] is not None:
            settings["advanced"] = {"eval_steps": data["eval_steps"]}
        return {
            "name": data["name"],
            "stage": data["stage"],
            "base_model": data["base_model"],
            "dataset": data["dataset"],
            "reward_model": data["reward_model"],
            "search_space": search_space,
            "n_trials": data["n_trials"],
            "parallel": data["parallel"],
            "metric": data["metric"],
            "direction": data["direction"] or None,
            "pruner": data["pruner"],
            "prune_on": data["prune_on"],
            "seed": data["seed"],
            "settings": settings,
        }

    def field_for_error(self, key: str) -> str | None:
        """The form field a service's error key names (``search_space.<i>.<key>`` is the i-th searched row)."""
        if key.startswith("search_space."):
            parts = key.split(".")
            rows = self.searched_rows()
            if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(rows):
                field = f"p{rows[int(parts[1])]}_{'low' if parts[2] in ('choices', 'name', 'type') else parts[2]}"
                return field if field in self.fields else None
            return None
        if key in ("settings", "advanced"):
            return None
        return key if key in self.fields else None
