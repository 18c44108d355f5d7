from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from portal.models import User

CONFIRMATION_WORD = "DELETE"


class DeletionConfirmForm(forms.Form):
    confirmation = forms.CharField(
        label=_("To confirm, type DELETE or your email address"),
        max_length=254,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_confirmation(self) -> str:
        typed: str = self.cleaned_data["confirmation"]
        # Any case: on a phone the keyboard may capitalise the first letter only, and the intent is the same.
        if typed.casefold() not in {CONFIRMATION_WORD.casefold(), self.user.email.casefold()}:
            raise forms.ValidationError(_("Type the word DELETE, or your email address."), code="mismatch")
        return typed


class ExtendForm(forms.Form):
    months = forms.IntegerField(label=_("Months"), min_value=0, max_value=2, initial=0)
    days = forms.IntegerField(label=_("Days"), min_value=0, max_value=45, initial=0)
    reason = forms.CharField(
        label=_("Reason (sent to the consumer)"), widget=forms.Textarea(attrs={"rows": 4}), max_length=2000
    )


class RejectForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason (sent to the consumer)"), widget=forms.Textarea(attrs={"rows": 4}), max_length=2000
    )


class RecordAcknowledgementForm(forms.Form):
    note = forms.CharField(
        label=_("How did the confirmation arrive?"),
        help_text=_("For example: email from their DPO on 3 March, reference 1234."),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
    )
