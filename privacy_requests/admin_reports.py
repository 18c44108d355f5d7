"""The regulator reports in the admin: CCPA metrics and the record of processing, for the roles allowed them.

The site's ``admin_view`` has already let in only active staff with MFA; these views add the report
permission. They read aggregates and the catalogue, no consumer's records, so opening them is not a
staff access to record (as with the admin's other list and verification pages); nothing is written.
"""

from datetime import date
from typing import Any

from django import forms
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from privacy_requests.reports.ccpa import ReportScope, ccpa_metrics, ccpa_metrics_csv
from privacy_requests.reports.periods import local_today
from privacy_requests.reports.processing import processing_record, processing_record_csv, processing_record_json

REPORTS_PERMISSION = "privacy_requests.view_regulator_reports"
# The CCPA took effect in 2020; no request the portal holds is older.
FIRST_YEAR = 2020


class CcpaReportForm(forms.Form):
    year = forms.IntegerField(label=_("Calendar year"), min_value=FIRST_YEAR)
    scope = forms.ChoiceField(label=_("Requests from"), choices=ReportScope.CHOICES, initial=ReportScope.CALIFORNIA)

    def clean_year(self) -> int:
        year: int = self.cleaned_data["year"]
        if year > local_today().year:
            raise forms.ValidationError(_("The year has not begun yet."))
        return year


class ProcessingRecordForm(forms.Form):
    as_of = forms.DateField(label=_("As of the end of"), widget=forms.DateInput(attrs={"type": "date"}))

    def clean_as_of(self) -> date:
        as_of: date = self.cleaned_data["as_of"]
        if as_of > local_today():
            raise forms.ValidationError(_("The record can only show a day that has begun."))
        return as_of


def reports_available(request: HttpRequest) -> list[dict[str, Any]]:
    """The reports this staff member may open, for the admin index."""
    if not request.user.has_perm(REPORTS_PERMISSION):
        return []
    return [
        {
            "title": _("CCPA annual metrics"),
            "description": _("Requests to know, delete, correct and opt out in a calendar year (§ 7102)."),
            "url": reverse("admin:privacy_requests_report_ccpa"),
        },
        {
            "title": _("Record of processing"),
            "description": _("Purposes, data categories, recipients, retention and legal basis (GDPR Art. 30)."),
            "url": reverse("admin:privacy_requests_report_processing"),
        },
    ]


def _allowed(request: HttpRequest) -> None:
    if not request.user.has_perm(REPORTS_PERMISSION):
        raise PermissionDenied


def _download(body: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def ccpa_report_view(request: HttpRequest, site: AdminSite) -> HttpResponse:
    _allowed(request)
    # The regulation asks for the previous calendar year; that is what the page opens on.
    form = CcpaReportForm({"year": local_today().year - 1, "scope": ReportScope.CALIFORNIA, **request.GET.dict()})
    report = ccpa_metrics(year=form.cleaned_data["year"], scope=form.cleaned_data["scope"]) if form.is_valid() else None
    if report is not None and request.GET.get("format") == "csv":
        return _download(ccpa_metrics_csv(report), "text/csv", f"ccpa-metrics-{report.year}-{report.scope}.csv")
    context = {**site.each_context(request), "title": _("CCPA annual metrics"), "form": form, "report": report}
    return TemplateResponse(request, "admin/privacy_requests/reports/ccpa.html", context)


def processing_record_view(request: HttpRequest, site: AdminSite) -> HttpResponse:
    _allowed(request)
    form = ProcessingRecordForm({"as_of": local_today(), **request.GET.dict()})
    record = processing_record(as_of=form.cleaned_data["as_of"]) if form.is_valid() else None
    if record is not None:
        name = f"record-of-processing-{record.as_of.isoformat()}"
        match request.GET.get("format"):
            case "csv":
                return _download(processing_record_csv(record), "text/csv", f"{name}.csv")
            case "json":
                return _download(processing_record_json(record), "application/json", f"{name}.json")
    context = {**site.each_context(request), "title": _("Record of processing"), "form": form, "record": record}
    return TemplateResponse(request, "admin/privacy_requests/reports/processing.html", context)
