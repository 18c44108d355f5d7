"""The operations dashboard and the partner scorecards in the admin.

The site's ``admin_view`` has already let in only active staff with MFA; these views add their
permission, as the regulator reports do. They read aggregates, no consumer's records, so opening
them is not a staff access to record. Suspending or reinstating a partner is the one write: POST
only (the admin's CSRF protection applies), for staff who may change partners, with a reason that
the audit log keeps.
"""

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.actions import AuditAction
from audit.glance import ChartBar, chart_bars
from audit.models import AuditEvent
from audit.services import Actor
from consents.models import DeliveryOutcome, Partner, PartnerStatus
from consents.services.partners import partner_resume, partner_suspend
from portal.http import AuthenticatedHttpRequest
from portal.operations.figures import Overview, PartnerFigures, Period, operations_overview, partner_figures
from privacy_requests.reports.periods import local_today

DASHBOARD_PERMISSION = "audit.view_operations_dashboard"
# Who may suspend or reinstate a partner: those who may change partners (the Partner manager role).
PARTNER_STATUS_PERMISSION = "consents.change_partner"
# The dashboard opens on the last twelve weeks; a longer period than a year is refused, so that
# every chart stays readable and every query bounded.
DEFAULT_DAYS = 84
MAX_DAYS = 366


class PeriodForm(forms.Form):
    first = forms.DateField(label=gettext_lazy("From"), widget=forms.DateInput(attrs={"type": "date"}))
    last = forms.DateField(label=gettext_lazy("To (inclusive)"), widget=forms.DateInput(attrs={"type": "date"}))

    def clean_last(self) -> Any:
        last = self.cleaned_data["last"]
        if last > local_today():
            raise forms.ValidationError(gettext_lazy("The period can only end on a day that has begun."))
        return last

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, last = cleaned.get("first"), cleaned.get("last")
        if first is not None and last is not None:
            if first > last:
                self.add_error("first", gettext_lazy("The period must start on or before its last day."))
            elif (last - first).days + 1 > MAX_DAYS:
                self.add_error(
                    "first",
                    gettext_lazy("Choose a period of at most %(days)s days.") % {"days": MAX_DAYS},
                )
        return cleaned

    @property
    def period(self) -> Period:
        return Period(first=self.cleaned_data["first"], last=self.cleaned_data["last"])


class PartnerStatusForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason"),
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("Kept in the audit log with the change."),
    )


def _period_form(request: HttpRequest) -> PeriodForm:
    today = local_today()
    defaults = {"first": today - timedelta(days=DEFAULT_DAYS - 1), "last": today}
    return PeriodForm({**defaults, **request.GET.dict()})


def dashboard_available(request: HttpRequest) -> list[dict[str, Any]]:
    """The dashboard link for the admin index, for staff who may open it."""
    if not request.user.has_perm(DASHBOARD_PERMISSION):
        return []
    return [
        {
            "title": gettext_lazy("Operations dashboard"),
            "description": gettext_lazy(
                "Consents, partner acknowledgements, deliveries, flagged accesses and privacy requests over a period."
            ),
            "url": reverse("admin:operations_dashboard"),
        }
    ]


def _hours_label(p50: float, p95: float) -> str:
    return _("median %(p50)s h, 95%% within %(p95)s h") % {"p50": round(p50, 1), "p95": round(p95, 1)}


def _charts(overview: Overview) -> dict[str, list[ChartBar]]:
    """Every chart's bars; the solid part and the hatched part are named in each chart's legend."""
    weeks: dict[Any, list[int]] = {week: [0, 0] for week in overview.period.weeks}
    for row in overview.consent_weeks:
        weeks[row.week][0] += row.grants
        weeks[row.week][1] += row.withdrawals
    with_latency = [row for row in overview.partners if row.latencies]
    flagged_weeks = dict.fromkeys(overview.period.weeks, 0)
    for partner in overview.partners:
        for week, count in partner.flagged_weeks.items():
            flagged_weeks[week] += count
    return {
        "consents": chart_bars(
            [(week, grants + withdrawals, withdrawals) for week, (grants, withdrawals) in weeks.items()],
            count_label=lambda total, part: (
                _("%(grants)s given, %(withdrawals)s withdrawn") % {"grants": total - part, "withdrawals": part}
            ),
        ),
        "latency": chart_bars(
            [
                (
                    row.partner,
                    float(row.latency_p95_hours or 0),
                    float(row.latency_p95_hours or 0) - float(row.latency_p50_hours or 0),
                )
                for row in with_latency
            ],
            count_label=lambda total, part: _hours_label(total - part, total),
        ),
        "deliveries": chart_bars(
            [
                (label, n, 0 if outcome == DeliveryOutcome.DELIVERED else n)
                for outcome, label, n in overview.deliveries.by_outcome
            ],
            count_label=lambda total, part: str(total),
        ),
        "flagged": chart_bars(
            [
                (row.partner, row.no_consent + row.outside_sharing, row.outside_sharing)
                for row in overview.partners
                if row.no_consent + row.outside_sharing
            ],
            count_label=lambda total, part: (
                _("%(no_consent)s without consent, %(outside)s outside what was shared")
                % {"no_consent": total - part, "outside": part}
            ),
        ),
        "flagged_trend": chart_bars(
            [(week, count, count) for week, count in flagged_weeks.items()], count_label=lambda total, part: str(total)
        ),
        "requests": chart_bars(
            [
                (f"{line.kind_label} · {line.jurisdiction_label}", line.received, line.overdue)
                for line in overview.requests
            ],
            count_label=lambda total, part: (
                _("%(received)s received, %(overdue)s overdue") % {"received": total, "overdue": part}
            ),
        ),
    }


def dashboard_view(request: HttpRequest, site: AdminSite) -> HttpResponse:
    if not request.user.has_perm(DASHBOARD_PERMISSION):
        raise PermissionDenied
    form = _period_form(request)
    overview = operations_overview(form.period) if form.is_valid() else None
    context = {
        **site.each_context(request),
        "title": _("Operations dashboard"),
        "form": form,
        "overview": overview,
        "charts": _charts(overview) if overview is not None else {},
    }
    return TemplateResponse(request, "admin/operations/dashboard.html", context)


def _scorecard_allowed(request: HttpRequest) -> None:
    user = request.user
    if not (user.has_perm(DASHBOARD_PERMISSION) or user.has_perm("consents.view_partner")):
        raise PermissionDenied


def scorecard_view(request: HttpRequest, site: AdminSite, partner_id: int) -> HttpResponse:
    _scorecard_allowed(request)
    partner = get_object_or_404(Partner, pk=partner_id)
    return _scorecard_page(request, site, partner, PartnerStatusForm())


def _scorecard_page(
    request: HttpRequest, site: AdminSite, partner: Partner, status_form: PartnerStatusForm, status: int = 200
) -> HttpResponse:
    form = _period_form(request)
    figures: PartnerFigures | None = partner_figures(form.period, partner)[0] if form.is_valid() else None
    status_changes = AuditEvent.objects.filter(
        action__in=(AuditAction.PARTNER_SUSPENDED, AuditAction.PARTNER_RESUMED),
        target_type=Partner._meta.label_lower,
        target_id=str(partner.pk),
    ).select_related("note")[:20]
    context = {
        **site.each_context(request),
        "title": _("Scorecard: %(partner)s") % {"partner": partner.name},
        "partner": partner,
        "form": form,
        "figures": figures,
        "status_form": status_form,
        "may_change_status": request.user.has_perm(PARTNER_STATUS_PERMISSION),
        "status_changes": status_changes,
        "is_suspended": partner.status == PartnerStatus.SUSPENDED,
    }
    return TemplateResponse(request, "admin/operations/scorecard.html", context, status=status)


def partner_status_view(request: AuthenticatedHttpRequest, site: AdminSite, partner_id: int) -> HttpResponse:
    """Suspend or reinstate the partner (``action`` in the POST), with the reason given."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not request.user.has_perm(PARTNER_STATUS_PERMISSION):
        raise PermissionDenied
    partner = get_object_or_404(Partner, pk=partner_id)
    action = request.POST.get("action")
    if action not in ("suspend", "resume"):
        return HttpResponse(status=400)
    form = PartnerStatusForm(request.POST)
    if not form.is_valid():
        return _scorecard_page(request, site, partner, form, status=400)
    change = partner_suspend if action == "suspend" else partner_resume
    change(partner=partner, reason=form.cleaned_data["reason"], actor=Actor.staff(request.user))
    done = _("%(partner)s is suspended.") if action == "suspend" else _("%(partner)s is active again.")
    messages.success(request, done % {"partner": partner.name})
    return redirect("admin:operations_scorecard", partner_id=partner.pk)
