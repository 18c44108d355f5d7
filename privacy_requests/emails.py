"""Emails about privacy requests, in the language the consumer used when making the request.

Each is sent through ``portal.emails`` after the transaction that caused it commits (a rolled-back
change tells nobody); a failure to send is logged and never undoes the change.
"""

from typing import Any

from django.conf import settings
from django.urls import reverse

from portal import emails
from portal.timezones import user_zone
from privacy_requests.models import PrivacyRequest


def request_url(request: PrivacyRequest) -> str:
    return settings.SITE_URL + reverse("requests:detail", args=[request.pk])


def request_email_on_commit(
    *, request: PrivacyRequest, template: str, to: str | None = None, extra: dict[str, Any] | None = None
) -> None:
    """Email the consumer about their request once the current transaction commits."""
    emails.send_mail_on_commit(
        f"privacy_requests/email/{template}",
        to=to or request.user.email,
        context={"request": request, "request_url": request_url(request)} | (extra or {}),
        language=request.language,
        time_zone=user_zone(request.user),
    )


def staff_email_on_commit(*, request: PrivacyRequest, template: str, extra: dict[str, Any] | None = None) -> None:
    """Email every staff recipient (in the site's default language) once the transaction commits."""
    admin_url = settings.SITE_URL + reverse("admin:privacy_requests_privacyrequest_change", args=[request.pk])
    context = {"request": request, "admin_url": admin_url} | (extra or {})
    for recipient in emails.staff_recipients():
        emails.send_mail_on_commit(f"privacy_requests/email/{template}", to=recipient, context=context)
