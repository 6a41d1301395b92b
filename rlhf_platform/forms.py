"""Forms of the project's own pages."""

from __future__ import annotations

from django import forms

from rlhf_platform.audit import TARGET_TYPES, Action
from rlhf_platform.models import ApiToken
from rlhf_platform.roles import Role


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


class TokenForm(forms.Form):
    """A new API token of one's own: its name and how long it lives."""

    EXPIRY_CHOICES = [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("", "Never")]

    name = forms.CharField(max_length=ApiToken.NAME_MAX_LENGTH, help_text="Where the token is used, e.g. “CI export”.")
    expires_in_days = forms.TypedChoiceField(
        label="Expires", choices=EXPIRY_CHOICES, coerce=int, empty_value=None, required=False, initial="30"
    )


ROLE_CHOICES = [(role.value, role.label().capitalize()) for role in Role]


class InviteForm(forms.Form):
    """A new person: a username, an optional email, their roles; they set their password by a link."""

    username = forms.CharField(max_length=150, help_text="Letters, digits and @ . + - _ only.")
    email = forms.EmailField(required=False)
    roles = forms.MultipleChoiceField(
        choices=ROLE_CHOICES, widget=forms.CheckboxSelectMultiple, initial=[Role.REVIEWER.value]
    )


class RolesForm(forms.Form):
    roles = forms.MultipleChoiceField(choices=ROLE_CHOICES, widget=forms.CheckboxSelectMultiple, required=False)


class TeamForm(forms.Form):
    name = forms.CharField(max_length=150, help_text="e.g. “Medical reviewers”. Add its people on the team's page.")
