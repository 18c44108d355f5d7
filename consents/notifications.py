"""Emails to consumers about their consents. The one place this app talks to the mail server."""

import logging
from smtplib import SMTPException

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from consents.models import Consent, ReceiptEvent

logger = logging.getLogger(__name__)


class NotificationError(Exception):
    """An email could not be handed to the mail server."""


def consent_language(consent: Consent) -> str:
    """The language the consumer used when they gave this consent (from its latest grant receipt)."""
    receipt = consent.receipts.filter(event=ReceiptEvent.GRANTED).order_by("-issued_at").first()
    code = receipt.payload.get("language") if receipt is not None else None
    if code:
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            pass
    return settings.LANGUAGE_CODE


def _send(*, template: str, to: str, language: str, context: dict[str, object]) -> None:
    with translation.override(language):
        subject = render_to_string(f"{template}_subject.txt", context).strip()
        text = render_to_string(f"{template}_message.txt", context)
        html = render_to_string(f"{template}_message.html", context)
    message = EmailMultiAlternatives(
        subject=settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(subject.splitlines()),
        body=text,
        to=[to],
    )
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except (SMTPException, OSError) as error:
        raise NotificationError(str(error)) from error


def expiry_reminder_send(consent: Consent) -> None:
    """Tell the consumer that a time-bound consent is about to end and how to renew it."""
    _send(
        template="consents/email/expiry_reminder",
        to=consent.user.email,
        language=consent_language(consent),
        context={
            "purpose": consent.purpose,
            "expires_at": consent.expires_at,
            "consents_url": settings.SITE_URL + reverse("consents:list"),
        },
    )
