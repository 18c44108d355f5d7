from django import forms
from django.utils.translation import gettext_lazy as _

from portal.models import Jurisdiction


class ProfileForm(forms.Form):
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    jurisdiction = forms.ChoiceField(
        label=_("Privacy law that applies to you"),
        choices=Jurisdiction.choices,
        help_text=_(
            "Decides the legal deadlines of your privacy requests. Requests you already made keep their deadlines."
        ),
    )
