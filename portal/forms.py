from typing import Any, cast

from django import forms
from django.db import models
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from portal.models import Jurisdiction, User


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


def _setting_label(name: str) -> Any:
    return capfirst(cast(models.Field, User._meta.get_field(name)).verbose_name)


class NotificationSettingsForm(forms.Form):
    """Which emails the consumer gets; on the profile and behind the link in every email."""

    notify_material_changes = forms.BooleanField(label=_setting_label("notify_material_changes"), required=False)
    notify_flagged_access = forms.BooleanField(
        label=_setting_label("notify_flagged_access"),
        required=False,
        help_text=_("Within minutes, and once for several accesses close together."),
    )
    monthly_digest = forms.BooleanField(label=_setting_label("monthly_digest"), required=False)
