from django import forms
from django.utils.translation import gettext_lazy as _


class WithdrawForm(forms.Form):
    note = forms.CharField(
        label=_("Why are you withdrawing? (optional)"),
        help_text=_("Only we see this. It helps us understand, and it does not change what happens."),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": 500}),
    )


class ReviewForm(forms.Form):
    ACCEPT = "accept"
    DECLINE = "decline"

    decision = forms.ChoiceField(
        choices=[(ACCEPT, _("Accept the new notice")), (DECLINE, _("Decline and withdraw my consent"))],
        error_messages={"required": _("Choose whether you accept the new notice or decline it.")},
    )
