"""Forms of the manager pages. They parse the request; the services validate and write."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from labeling.models import Campaign, PreferenceDataset, Project
from labeling.selectors import TaskFilters
from rlhf_platform import json_limits

# Starting points for the schema editor's preset buttons; each is a valid question schema.
SCHEMA_PRESETS: dict[str, dict[str, Any]] = {
    "Pairwise preference": {
        "questions": [
            {
                "id": "preference",
                "type": "pairwise",
                "label": "Which response is better?",
                "strength_labels": ["slightly better", "better", "much better"],
                "allow_tie": True,
                "allow_both_bad": True,
            },
            {"id": "rationale", "type": "text", "label": "Why?", "required": False, "max_length": 2000},
        ]
    },
    "Ranking of K": {
        "questions": [
            {"id": "ranking", "type": "ranking", "label": "Rank the responses, best first", "allow_ties": False},
            {"id": "rationale", "type": "text", "label": "Why?", "required": False, "max_length": 2000},
        ]
    },
    "Likert HHH + flags": {
        "questions": [
            {
                "id": "quality",
                "type": "likert",
                "label": "Rate each response",
                "aspects": [
                    {"id": "helpfulness", "label": "Helpfulness"},
                    {"id": "honesty", "label": "Honesty"},
                    {"id": "harmlessness", "label": "Harmlessness"},
                ],
                "scale": {"min": 1, "max": 5, "labels": {"1": "Very poor", "3": "Acceptable", "5": "Excellent"}},
            },
            {
                "id": "flags",
                "type": "flags",
                "label": "Flag problems",
                "options": [
                    {"id": "unsafe", "label": "Unsafe or harmful"},
                    {"id": "factual_error", "label": "Factual error"},
                    {"id": "refusal", "label": "Needless refusal"},
                ],
            },
        ]
    },
    "Rewrite": {
        "questions": [
            {
                "id": "rewrite",
                "type": "rewrite",
                "label": "Pick the response closest to ideal and rewrite it",
                "required": True,
                "max_length": 8000,
            },
        ]
    },
}


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=90, required=False, help_text="Left empty, it follows the name.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class CampaignForm(forms.Form):
    """The campaign settings. Ranges and the question schema are checked by ``campaign_create``/``campaign_update``."""

    project = forms.ModelChoiceField(queryset=Project.objects.order_by("name"), empty_label=None)
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=90, required=False, help_text="Left empty, it follows the name.")
    guidelines = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "class": "mono"}),
        required=False,
        help_text="Markdown, shown to reviewers beside every task.",
    )
    overlap = forms.IntegerField(
        initial=3, widget=forms.NumberInput(attrs={"min": 1, "max": 50}), help_text="Judgements wanted per task."
    )
    lease_seconds = forms.IntegerField(
        initial=900,
        widget=forms.NumberInput(attrs={"min": 30, "step": 30}),
        help_text="How long a reviewer holds a task.",
    )
    gold_rate = forms.FloatField(
        initial=0.0,
        widget=forms.NumberInput(attrs={"min": 0, "max": 0.5, "step": 0.01}),
        help_text="Share of assignments that are gold tasks, 0 to 0.5.",
    )
    question_schema = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 18, "class": "mono", "spellcheck": "false"}),
        initial=json.dumps(SCHEMA_PRESETS["Pairwise preference"], indent=2),
        label="Question schema (JSON)",
    )

    def __init__(self, *args: Any, campaign: Campaign | None = None, questions_fixed: bool = False, **kwargs: Any):
        if campaign is not None:
            kwargs.setdefault(
                "initial",
                {
                    "project": campaign.project_id,
                    "name": campaign.name,
                    "slug": campaign.slug,
                    "guidelines": campaign.guidelines,
                    "overlap": campaign.overlap,
                    "lease_seconds": campaign.lease_seconds,
                    "gold_rate": campaign.gold_rate,
                    "question_schema": json.dumps(campaign.question_schema, indent=2),
                },
            )
        super().__init__(*args, **kwargs)
        if campaign is not None:
            # A campaign stays in its project: datasets and exports are grouped by it.
            self.fields["project"].disabled = True
            self.fields["slug"].help_text = "Changing it changes the campaign's addresses."
        if questions_fixed:
            self.fields["question_schema"].widget.attrs["readonly"] = True
            self.fields[
                "question_schema"
            ].help_text = "Fixed: reviewers have answered these questions. Create a new campaign to ask others."

    def clean_question_schema(self) -> Any:
        text = self.cleaned_data["question_schema"]
        try:
            return json_limits.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(
                "Invalid JSON at line %(line)s, column %(column)s: %(reason)s.",
                params={"line": error.lineno, "column": error.colno, "reason": error.msg},
                code="invalid_json",
            ) from None
        except json_limits.NestedTooDeeply as error:
            raise forms.ValidationError(str(error), code="nested_too_deeply") from None

    def campaign_fields(self) -> dict[str, Any]:
        """The cleaned fields as the campaign services take them (without the project)."""
        fields = {name: self.cleaned_data[name] for name in self.fields if name != "project"}
        if not fields["slug"]:
            del fields["slug"]
        return fields

    def add_service_errors(self, errors: dict[str, str], message: str) -> None:
        """Show a service's field errors beside their fields; a schema error keeps its path."""
        if not errors:
            self.add_error(None, message)
        for key, text in errors.items():
            field, _, path = key.partition(".")
            if field not in self.fields:
                self.add_error(None, f"{key}: {text}")
            else:
                self.add_error(field, f"{path}: {text}" if path else text)


class DatasetBuildForm(forms.Form):
    """Parses the build page; ``BuildParams`` checks the ranges."""

    campaigns = forms.ModelMultipleChoiceField(
        queryset=Campaign.objects.order_by("name"), widget=forms.CheckboxSelectMultiple
    )
    name = forms.CharField(max_length=200, required=False, help_text="Left empty, it names the campaigns.")
    kind = forms.ChoiceField(choices=PreferenceDataset.Kind.choices)
    method = forms.ChoiceField(
        choices=[
            ("bradley_terry", "Bradley-Terry per prompt, reviewer-weighted"),
            ("weighted", "Votes weighted by reviewer reliability"),
            ("majority", "Majority vote"),
        ]
    )
    min_votes = forms.IntegerField(initial=1, min_value=1)
    min_agreement = forms.FloatField(initial=0.0, help_text="Share of votes on the chosen side, 0 to 1.")
    min_confidence = forms.FloatField(initial=0.5, help_text="The method's probability that chosen is better.")
    ties = forms.ChoiceField(choices=[("drop", "Drop ties"), ("keep", "Keep ties with margin 0")])
    drop_flagged = forms.BooleanField(initial=True, required=False, label="Drop pairs with a flagged response")
    drop_both_bad = forms.BooleanField(initial=True, required=False, label="Drop pairs most reviewers called both bad")
    include_gold = forms.BooleanField(required=False, label="Include gold tasks")
    exclude_flagged_reviewers = forms.BooleanField(
        required=False,
        label="Leave out flagged reviewers",
        help_text="Reviewers the quality page flags (low gold accuracy, too fast, position bias).",
    )
    test_fraction = forms.FloatField(
        initial=0.1,
        help_text="Share of prompts held out: no stage trains on them, and a round's verdict is measured on them.",
    )
    seed = forms.IntegerField(initial=0)


# --- the task browser's query ---------------------------------------------------------------

YES_NO = [("", "Any"), ("yes", "Yes"), ("no", "No")]
# Meta keys as imports write them; "__" is refused, as the ORM would read it as a nested path.
META_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
TASK_SORTS = [
    ("id", "Oldest first"),
    ("-id", "Newest first"),
    ("agreement", "Agreement, lowest first"),
    ("-agreement", "Agreement, highest first"),
    ("judgements", "Judgements, fewest first"),
    ("-judgements", "Judgements, most first"),
    ("flags", "Flags, fewest first"),
    ("-flags", "Flags, most first"),
    ("skips", "Skips, fewest first"),
    ("-skips", "Skips, most first"),
    ("prompt_length", "Prompt, shortest first"),
    ("-prompt_length", "Prompt, longest first"),
]


class TaskFilterForm(forms.Form):
    """The task browser's filters, sort and page, from a query string (the page's and the API's)."""

    agreement_min = forms.FloatField(required=False, min_value=0, max_value=1, label="Agreement from")
    agreement_max = forms.FloatField(required=False, min_value=0, max_value=1, label="to")
    judgements_min = forms.IntegerField(required=False, min_value=0, label="Judgements from")
    judgements_max = forms.IntegerField(required=False, min_value=0, label="to")
    gold = forms.ChoiceField(required=False, choices=YES_NO)
    flagged = forms.ChoiceField(required=False, choices=YES_NO)
    skipped = forms.ChoiceField(required=False, choices=YES_NO)
    reviewer = forms.CharField(required=False, max_length=150, help_text="Username: tasks they judged.")
    prompt_min = forms.IntegerField(required=False, min_value=0, label="Prompt length from")
    prompt_max = forms.IntegerField(required=False, min_value=0, label="to")
    meta = forms.CharField(required=False, max_length=300, help_text="key=value: tasks whose meta has it.")
    q = forms.CharField(required=False, max_length=200, label="Search", help_text="In prompts and external ids.")
    sort = forms.ChoiceField(required=False, choices=TASK_SORTS)
    page = forms.IntegerField(required=False, min_value=1)
    page_size = forms.IntegerField(required=False, min_value=1, max_value=500)

    RANGES = (("agreement_min", "agreement_max"), ("judgements_min", "judgements_max"), ("prompt_min", "prompt_max"))

    def clean_meta(self) -> tuple[str, str] | None:
        raw = self.cleaned_data["meta"].strip()
        if not raw:
            return None
        key, equals, value = raw.partition("=")
        key = key.strip()
        if not equals or not META_KEY.match(key) or "__" in key:
            raise forms.ValidationError(
                "Write key=value, the key made of letters, digits, '.', '-' and '_' (e.g. source=forum)."
            )
        return key, value.strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for low, high in self.RANGES:
            if cleaned.get(low) is not None and cleaned.get(high) is not None and cleaned[low] > cleaned[high]:
                self.add_error(high, "Must not be below the lower bound.")
        return cleaned

    def clean_reviewer(self) -> Any:
        username = self.cleaned_data["reviewer"].strip()
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise forms.ValidationError("No one has this username.")
        return user

    def filters(self) -> TaskFilters:
        """The filters, once ``is_valid()``."""
        data = self.cleaned_data
        yes_no = {"yes": True, "no": False, "": None}
        return TaskFilters(
            agreement_min=data["agreement_min"],
            agreement_max=data["agreement_max"],
            judgements_min=data["judgements_min"],
            judgements_max=data["judgements_max"],
            gold=yes_no[data["gold"]],
            flagged=yes_no[data["flagged"]],
            skipped=yes_no[data["skipped"]],
            reviewer=data["reviewer"],
            prompt_min=data["prompt_min"],
            prompt_max=data["prompt_max"],
            meta=data["meta"],
            q=data["q"].strip(),
            sort=data["sort"] or "id",
        )
