from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _

from audit.models import AccessCategorySeen, AccessDaily, StaffAccessReasonCode, catalogue
from audit.selectors import AccessFilter
from audit.staff_access import is_ticket_reference, privacy_requests_referenced

if TYPE_CHECKING:
    from portal.models import User


class AccessFilterForm(forms.Form):
    """Filters of the consumer's access timeline. Choices list only what exists; bad values are form errors."""

    partner = forms.ChoiceField(label=_("Partner"), required=False)
    purpose = forms.ChoiceField(label=_("Purpose"), required=False)
    category = forms.ChoiceField(label=_("Data category"), required=False)
    since = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    flagged = forms.BooleanField(label=_("Only flagged accesses"), required=False)

    def __init__(self, data: QueryDict | None, *, user: User) -> None:
        super().__init__(data)
        # Only what appears in this consumer's own log is offered.
        seen = AccessDaily.objects.filter(user=user)
        anything = [("", _("Any"))]
        partners = catalogue("partner").filter(pk__in=seen.values("partner_id")).values_list("slug", "name")
        purposes = catalogue("purpose").filter(pk__in=seen.values("purpose_id"))
        categories = catalogue("category").filter(
            pk__in=AccessCategorySeen.objects.filter(user=user).values("category_id")
        )
        cast(forms.ChoiceField, self.fields["partner"]).choices = [*anything, *partners]
        # Purposes and categories by their names in the page's language (values stay the slugs).
        for name, rows in (("purpose", purposes), ("category", categories)):
            named = [(row.slug, row.l10n.name) for row in rows.only("slug", "name", "translations")]
            named.sort(key=lambda choice: str(choice[1]))
            cast(forms.ChoiceField, self.fields[name]).choices = [*anything, *named]

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError(_("The start date must not be after the end date."), code="date_range")
        return data

    def to_filter(self) -> AccessFilter:
        if not self.is_valid():
            return AccessFilter()
        data = self.cleaned_data
        return AccessFilter(
            partner=data["partner"],
            purpose=data["purpose"],
            category=data["category"],
            since=data["since"],
            until=data["until"],
            flagged_only=data["flagged"],
        )


class StaffAccessReasonForm(forms.Form):
    """Why a staff member is about to open one consumer's records: a reason code and its reference."""

    code = forms.ChoiceField(
        label=_("Reason"), choices=StaffAccessReasonCode.choices, widget=forms.RadioSelect, required=True
    )
    reference = forms.CharField(
        label=_("Reference"),
        max_length=64,
        help_text=_(
            "The ticket number (for example #4821 or SUP-4821), or for privacy request handling the "
            "request's reference (the first 8 characters of its id, as the queue shows it). "
            "The consumer will see it."
        ),
    )

    def __init__(self, *args: Any, consumer: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.consumer = consumer

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean() or {}
        code, reference = cleaned.get("code"), cleaned.get("reference", "")
        if not code or not reference:
            return cleaned
        if code == StaffAccessReasonCode.PRIVACY_REQUEST:
            if not privacy_requests_referenced(consumer_id=self.consumer.pk, reference=reference):
                self.add_error(
                    "reference",
                    _(
                        "This person has no privacy request with that reference "
                        "(its id, or the first 8 characters of it)."
                    ),
                )
        elif not is_ticket_reference(reference):
            self.add_error("reference", _("Give the ticket number, for example #4821 or SUP-4821."))
        return cleaned
