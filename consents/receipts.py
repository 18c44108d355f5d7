"""Signed consent receipts: Kantara Consent Receipt v1.1 / ISO/IEC TS 27560 fields, as a JWS (``audit.signing``)."""

import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone, translation

from audit.signing import document_sign
from consents.models import Consent, ConsentReceipt, ReceiptEvent, Sharing
from consents.models.translations import language_of

RECEIPT_VERSION = "KI-CR-v1.1.0"


def principal_id(user_pk: int) -> str:
    """A stable pseudonymous principal id: receipts stay provable without naming the person."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"principal:{user_pk}".encode(), hashlib.sha256).hexdigest()
    return f"urn:privacy-portal:principal:{digest[:32]}"


def receipt_language(consent: Consent) -> str:
    """The consumer's language: the one they chose, else the one they are using now (a shipped code)."""
    return language_of(getattr(consent.user, "language", "") or translation.get_language())


def receipt_payload(*, consent: Consent, event: str, receipt_id: str, issued_at: Any) -> dict[str, Any]:
    """The receipt's fields, with the notice's texts in the consumer's language (recorded as ``language``)."""
    version = consent.version
    purpose = consent.purpose
    language = receipt_language(consent)
    notice = version.in_language(language)
    categories = list(version.data_categories.order_by("slug"))
    sharings = (
        Sharing.objects.filter(purpose=purpose, is_active=True).select_related("partner").order_by("partner__name")
    )
    third_parties = [{"name": s.partner.name, "kind": s.partner.kind, "country": s.partner.country} for s in sharings]
    controller = settings.PORTAL_CONTROLLER
    return {
        "version": RECEIPT_VERSION,
        "jurisdiction": controller["jurisdiction"],
        "consentTimestamp": int(issued_at.timestamp()),
        "issuedAt": issued_at.isoformat(),
        "collectionMethod": consent.method,
        "consentReceiptID": receipt_id,
        # Kantara: the language in which consent was obtained, as ISO 639-1; the texts below are in it.
        "language": language.split("-")[0],
        "piiPrincipalId": principal_id(consent.user_id),
        "piiControllers": [
            {
                "piiController": controller["name"],
                "contact": controller["contact"],
                "address": controller["address"],
                "email": controller["email"],
                "piiControllerUrl": settings.SITE_URL,
            }
        ],
        "policyUrl": controller["policy_url"],
        "event": event,
        "state": consent.status,
        "services": [
            {
                "service": notice.name or purpose.name,
                "purposes": [
                    {
                        "purposeId": purpose.slug,
                        "purpose": notice.description,
                        "purposeCategory": [purpose.category] if purpose.category else [],
                        "legalBasis": purpose.legal_basis,
                        "consentType": "EXPLICIT" if consent.method != "gpc" else "OPT-OUT-SIGNAL",
                        "noticeVersion": version.number,
                        "noticePublishedAt": version.published_at.isoformat(),
                        "piiCategory": [c.slug for c in categories],
                        "piiCategoryNames": [str(c.in_language(language).name) for c in categories],
                        "primaryPurpose": purpose.is_essential,
                        "termination": notice.retention,
                        "thirdPartyDisclosure": bool(third_parties),
                        "thirdPartyName": ", ".join(t["name"] for t in third_parties),
                        "thirdParties": third_parties,
                    }
                ],
            }
        ],
        "sensitive": any(c.sensitive for c in categories),
        "spiCat": [c.slug for c in categories if c.sensitive],
        "validity": {
            "durationType": consent.duration_type,
            "periodDays": consent.period_days,
            "grantedAt": consent.granted_at.isoformat() if consent.granted_at else None,
            "expiresAt": consent.expires_at.isoformat() if consent.expires_at else None,
            "revokedAt": consent.revoked_at.isoformat() if consent.revoked_at else None,
        },
        "withdrawal": {
            "method": "web",
            "url": settings.SITE_URL + reverse("consents:list"),
            "reason": consent.revocation_reason or None,
            "initiator": consent.changed_by if event != ReceiptEvent.GRANTED else None,
        },
    }


def receipt_issue(*, consent: Consent, event: str) -> ConsentReceipt:
    """Create and sign the receipt for one consent event (called inside the consent service's transaction)."""
    receipt = ConsentReceipt(user_id=consent.user_id, consent=consent, event=event, issued_at=timezone.now())
    receipt.payload = receipt_payload(
        consent=consent, event=event, receipt_id=str(receipt.id), issued_at=receipt.issued_at
    )
    receipt.jws = document_sign(receipt.payload)
    receipt.sha256 = hashlib.sha256(receipt.jws.encode()).hexdigest()
    receipt.save()
    return receipt
