"""Emails to consumers about their consents, sent through ``portal.emails``."""

from django.conf import settings
from django.urls import reverse
from django.utils import translation

from consents.models import Consent, ReceiptEvent
from portal.emails import send_mail


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


def expiry_reminder_send(consent: Consent) -> None:
    """Tell the consumer that a time-bound consent is about to end and how to renew it.

    Raises ``portal.emails.EmailError`` when the mail server refuses it.
    """
    send_mail(
        "consents/email/expiry_reminder",
        to=consent.user.email,
        language=consent_language(consent),
        subject_prefix=settings.ACCOUNT_EMAIL_SUBJECT_PREFIX,
        context={
            "purpose": consent.purpose,
            "expires_at": consent.expires_at,
            "consents_url": settings.SITE_URL + reverse("consents:list"),
        },
    )
