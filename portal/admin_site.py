"""The Django admin, reachable only through the allauth login and only with MFA enabled."""

from allauth.account.decorators import secure_admin_login
from allauth.mfa.utils import is_mfa_enabled
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, re_path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _

from portal.alerts import admin_alerts
from portal.operations.admin_views import dashboard_available, dashboard_view, partner_status_view, scorecard_view
from privacy_requests.admin_reports import ccpa_report_view, processing_record_view, reports_available

# Admin pages of the models that moved from the portal app to privacy_requests, which staff may
# have bookmarked under /admin/portal/.
_MOVED_TO_PRIVACY_REQUESTS = ("consentproof", "privacyrequest", "privacyrequestextension", "privacyrequestpartnertask")


class PortalAdminSite(admin.AdminSite):
    site_header = _("Privacy Portal administration")
    site_title = _("Privacy Portal admin")
    index_title = _("Operations")

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and is_mfa_enabled(user))

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        context = {**(extra_context or {}), "alerts": admin_alerts(), "reports": reports_available(request)}
        context["operations"] = dashboard_available(request)
        return super().index(request, context)

    def get_urls(self) -> list[URLPattern | URLResolver]:
        moved = "|".join(_MOVED_TO_PRIVACY_REQUESTS)
        return [
            re_path(rf"^portal/(?P<rest>(?:{moved})/.*)$", _moved_to_privacy_requests),
            path(
                "privacy_requests/reports/ccpa/",
                self.admin_view(lambda request: ccpa_report_view(request, self)),
                name="privacy_requests_report_ccpa",
            ),
            path(
                "privacy_requests/reports/processing/",
                self.admin_view(lambda request: processing_record_view(request, self)),
                name="privacy_requests_report_processing",
            ),
            path(
                "operations/",
                self.admin_view(lambda request: dashboard_view(request, self)),
                name="operations_dashboard",
            ),
            path(
                "operations/partners/<int:partner_id>/",
                self.admin_view(lambda request, partner_id: scorecard_view(request, self, partner_id)),
                name="operations_scorecard",
            ),
            path(
                "operations/partners/<int:partner_id>/status/",
                self.admin_view(lambda request, partner_id: partner_status_view(request, self, partner_id)),
                name="operations_partner_status",
            ),
            *super().get_urls(),
        ]

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        """Send people to the allauth login (rate limited, MFA aware) instead of the admin's own form."""
        return _admin_login(request, self, extra_context)


@secure_admin_login
def _admin_login(request: HttpRequest, site: PortalAdminSite, extra_context: dict | None) -> HttpResponse:
    # secure_admin_login has already sent anonymous visitors to the allauth login and refused
    # authenticated non-staff; what is left is staff, with or without a second factor.
    if not is_mfa_enabled(request.user):
        messages.warning(request, _("Staff must turn on two-factor authentication before using the admin."))
        return redirect("mfa_activate_totp")
    next_url = request.GET.get("next", "")
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        return redirect(next_url)
    return redirect("admin:index")


def _moved_to_privacy_requests(request: HttpRequest, rest: str) -> HttpResponse:
    url = reverse("admin:app_list", args=["privacy_requests"]) + rest
    query = request.META.get("QUERY_STRING", "")
    return HttpResponsePermanentRedirect(f"{url}?{query}" if query else url)
