from typing import Any, cast

from django import forms
from django.conf import settings
from django.db import models
from django.http import HttpRequest
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from portal.models import Jurisdiction, User
from portal.timezones import zone_choices, zone_is_valid


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
    time_zone = forms.ChoiceField(
        label=_("Time zone"),
        required=False,
        help_text=_("Every time and deadline we show you, in pages, emails and downloads, is in this time zone."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = self.initial.get("time_zone", "")
        # Offsets change with daylight saving time, so the list is built for each form.
        field = self.fields["time_zone"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [
            ("", _("Not chosen: times are shown in %(zone)s") % {"zone": settings.TIME_ZONE}),
            *zone_choices(current),
        ]


class TimeZoneForm(forms.Form):
    """The zone a browser reports (``Intl.DateTimeFormat().resolvedOptions().timeZone``)."""

    time_zone = forms.CharField(max_length=64)

    def clean_time_zone(self) -> str:
        name: str = self.cleaned_data["time_zone"]
        if not zone_is_valid(name):
            raise forms.ValidationError(_("“%(zone)s” is not a time zone we know."), params={"zone": name})
        return name


class SignupTimeZoneForm(forms.Form):
    """allauth's signup with the browser's zone in a hidden field (``static/js/time_zone.js`` fills it)."""

    time_zone = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)

    def signup(self, request: HttpRequest, user: User) -> None:
        # A name that is no zone (an old browser, a tampered form) leaves the zone unknown rather than
        # refusing the signup: the consumer can choose one on the profile.
        name = self.cleaned_data.get("time_zone", "")
        if zone_is_valid(name):
            user.time_zone = name
            user.save(update_fields=["time_zone"])


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
