"""Forms of the project's own pages."""

from __future__ import annotations

from django import forms

from rlhf_platform.audit import TARGET_TYPES, Action


class AuditFilterForm(forms.Form):
    """The audit log's filters (GET); every field optional."""

    actor = forms.CharField(required=False, max_length=150, help_text="A username, or “system”.")
    action = forms.ChoiceField(required=False, choices=[("", "Any action"), *Action.choices])
    target_type = forms.ChoiceField(required=False, label="Object", choices=[("", "Any object"), *TARGET_TYPES.items()])
    target_id = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, label="Object id")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("since") and cleaned.get("until") and cleaned["since"] > cleaned["until"]:
            self.add_error("until", "Must not be before “since”.")
        return cleaned
