"""Emails about privacy requests, in the language the consumer used when making the request.

Every email is sent after the transaction that caused it commits (a rolled-back change tells
nobody); a failure to send is logged by ``on_commit(robust=True)`` and never undoes the change.
"""

from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from portal.models import User
from privacy_requests.models import PrivacyRequest


def email_render(*, template: str, language: str, context: dict[str, Any]) -> tuple[str, str]:
    """The subject (one line) and body of ``templates/portal/email/<template>_{subject,message}.txt``."""
    with translation.override(language):
        subject = render_to_string(f"portal/email/{template}_subject.txt", context)
        body = render_to_string(f"portal/email/{template}_message.txt", context)
    return " ".join(subject.split()), body


def email_send(*, template: str, to: list[str], language: str, context: dict[str, Any]) -> None:
    subject, body = email_render(template=template, language=language, context=context)
    EmailMultiAlternatives(subject=subject, body=body, to=to).send()


def request_url(request: PrivacyRequest) -> str:
    return settings.SITE_URL + reverse("requests:detail", args=[request.pk])


def request_email_on_commit(
    *, request: PrivacyRequest, template: str, to: str | None = None, extra: dict[str, Any] | None = None
) -> None:
    """Email the consumer about their request once the current transaction commits."""
    recipient = to or request.user.email
    context = {"request": request, "request_url": request_url(request), "site_url": settings.SITE_URL} | (extra or {})
    transaction.on_commit(
        lambda: email_send(template=template, to=[recipient], language=request.language, context=context),
        robust=True,
    )


def staff_email_on_commit(*, request: PrivacyRequest, template: str, extra: dict[str, Any] | None = None) -> None:
    """Email every active staff member (in the site's default language) once the transaction commits."""
    recipients = list(User.objects.filter(is_staff=True, is_active=True).values_list("email", flat=True))
    if not recipients:
        return
    admin_url = settings.SITE_URL + reverse("admin:privacy_requests_privacyrequest_change", args=[request.pk])
    context = {"request": request, "admin_url": admin_url, "site_url": settings.SITE_URL} | (extra or {})

    def send(to: str) -> None:
        email_send(template=template, to=[to], language=settings.LANGUAGE_CODE, context=context)

    for recipient in recipients:
        transaction.on_commit(partial(send, recipient), robust=True)
