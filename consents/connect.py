"""The consumer's consent screen for a connected app: /connect/authorize (RFC 9126 request_uri, RFC 9207 iss).

The app has pushed its request (``consents.api.connect``); the browser brings back its
``request_uri`` once. A request that is unknown, used, expired or presented with another app's
client_id gets an error page here and is never redirected: its redirect URI cannot be trusted
until the request is matched to the app.
"""

from datetime import datetime, time, timedelta
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from consents.authorization_details import DetailsError, RequestedAccess, details_validate
from consents.countries import country_name
from consents.errors import DomainError
from consents.models import REQUEST_URI_PREFIX, DataCategory, DurationType, PushedAuthorization
from consents.services.apps import app_grant_create, one_time_expiry, pushed_authorization_deny
from portal.http import AuthenticatedHttpRequest


class AuthorizeForm(forms.Form):
    """What the consumer approves: optional categories (none ticked) and a duration no longer than proposed."""

    optional_categories = forms.MultipleChoiceField(
        label=_("Optional data"), required=False, widget=forms.CheckboxSelectMultiple
    )
    duration = forms.ChoiceField(label=_("For how long"), widget=forms.RadioSelect)
    until = forms.DateField(
        label=_("Until"), required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text=""
    )

    def __init__(self, *args: Any, access: RequestedAccess, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access = access
        optional = [c.category for c in access.categories if not c.required]
        cast(forms.ChoiceField, self.fields["optional_categories"]).choices = [(c.slug, c.l10n.name) for c in optional]
        choices = [(DurationType.ONE_TIME.value, _("Just this once"))]
        if access.duration_type != DurationType.ONE_TIME:
            choices.append((DurationType.TIME_BOUND.value, _("Until a date I choose")))
        if access.duration_type == DurationType.PERSISTENT:
            choices.append((DurationType.PERSISTENT.value, _("Until I withdraw it")))
        cast(forms.ChoiceField, self.fields["duration"]).choices = choices
        self.latest = self._latest_date()
        if self.latest is not None:
            self.fields["until"].help_text = _("At the latest %(date)s.") % {"date": self.latest.isoformat()}
            # The app's proposal, ready to shorten; the duration itself stays unchosen (nothing pre-ticked).
            self.fields["until"].initial = self.latest

    def _latest_date(self) -> Any:
        if self.access.duration_type == DurationType.TIME_BOUND and self.access.period_days:
            return timezone.localdate() + timedelta(days=self.access.period_days)
        return None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("duration") == DurationType.TIME_BOUND:
            until = cleaned.get("until")
            if until is None:
                self.add_error("until", _("Choose the last day of access."))
            elif until <= timezone.localdate() or (self.latest is not None and until > self.latest):
                self.add_error("until", _("Choose a day after today and no later than the app asked for."))
        return cleaned

    def categories(self) -> list[DataCategory]:
        ticked = set(self.cleaned_data["optional_categories"])
        return [c.category for c in self.access.categories if c.required or c.category.slug in ticked]

    def expiry(self) -> tuple[datetime | None, int | None]:
        """When access ends and, for a chosen date, the period in days the app is told."""
        duration = self.cleaned_data["duration"]
        if duration == DurationType.ONE_TIME:
            return one_time_expiry(), None
        if duration == DurationType.PERSISTENT:
            return None, None
        until = self.cleaned_data["until"]
        # The end of the chosen day where the consumer is, never later than the app proposed.
        end = datetime.combine(until, time(23, 59, 59), tzinfo=timezone.get_current_timezone())
        now = timezone.now()
        if self.access.period_days:
            end = min(end, now + timedelta(days=self.access.period_days))
        return end, max(1, (until - timezone.localdate()).days)


def _error(request: HttpRequest, message: Any) -> HttpResponse:
    return render(request, "consents/connect_error.html", {"message": message}, status=400)


def _redirect(redirect_uri: str, **params: str) -> HttpResponseRedirect:
    # RFC 9207: the issuer goes with every authorisation response, success or error.
    separator = "&" if "?" in redirect_uri else "?"
    query = urlencode({**params, "iss": settings.SITE_URL})
    return HttpResponseRedirect(f"{redirect_uri}{separator}{query}")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def authorize(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show who asks for what and for how long; approve (all or part) or deny."""
    client_id = request.GET.get("client_id", "")
    request_uri = request.GET.get("request_uri", "")
    if not request_uri.startswith(REQUEST_URI_PREFIX):
        return _error(request, _("The app sent you here without a valid request. Go back to the app and try again."))
    pushed = (
        PushedAuthorization.objects.select_related("app__partner", "app__application")
        .filter(reference=request_uri.removeprefix(REQUEST_URI_PREFIX))
        .first()
    )
    if pushed is None or pushed.app.application.client_id != client_id or not pushed.app.is_active:
        return _error(request, _("The app sent you here without a valid request. Go back to the app and try again."))
    if not pushed.is_usable():
        return _error(request, _("This request has expired or was already used. Go back to the app and start again."))
    try:
        access = details_validate(pushed.parameters["authorization_details"], pushed.app)
    except DetailsError:
        return _error(request, _("The app asked for something it is not allowed to ask for."))
    redirect_uri, state = pushed.parameters["redirect_uri"], pushed.parameters["state"]

    form = AuthorizeForm(request.POST if request.method == "POST" else None, access=access)
    if request.method == "POST":
        if request.POST.get("decision") == "deny":
            pushed_authorization_deny(pushed=pushed)
            return _redirect(redirect_uri, error="access_denied", state=state)
        if request.POST.get("decision") == "approve" and form.is_valid():
            expires_at, period_days = form.expiry()
            try:
                _grant, code = app_grant_create(
                    pushed=pushed,
                    access=access,
                    user=request.user,
                    categories=form.categories(),
                    duration_type=form.cleaned_data["duration"],
                    expires_at=expires_at,
                    period_days=period_days,
                )
            except DomainError:
                return _error(
                    request, _("This request has expired or was already used. Go back to the app and start again.")
                )
            return _redirect(redirect_uri, code=code, state=state)
    partner = pushed.app.partner
    response = render(
        request,
        "consents/connect_authorize.html",
        {
            "app": pushed.app,
            "partner": partner,
            "partner_country": country_name(partner.country),
            "access": access,
            "notice": access.purpose.current_version,
            "required": [c for c in access.categories if c.required],
            "form": form,
        },
        status=400 if form.is_bound else 200,
    )
    # Browsers apply CSP form-action to the redirect that answers a form (Chromium blocks it), and
    # this form's answer is a redirect to the app: this page alone also allows the app's origin.
    target = urlsplit(redirect_uri)
    form_action = [*cast(list[str], settings.SECURE_CSP["form-action"]), f"{target.scheme}://{target.netloc}"]
    setattr(response, "_csp_config", {**settings.SECURE_CSP, "form-action": form_action})  # noqa: B010 (Django's hook)
    return response
