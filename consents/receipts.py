"""Signed consent receipts: Kantara Consent Receipt v1.1 / ISO/IEC TS 27560 fields, as a JWS (``audit.signing``)."""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone, translation

from audit.signing import document_sign
from consents.models import (
    AppGrant,
    Consent,
    ConsentMethod,
    ConsentReceipt,
    DataCategory,
    Purpose,
    PurposeVersion,
    ReceiptEvent,
    Sharing,
)
from consents.models.translations import language_of

if TYPE_CHECKING:
    from portal.models import User

RECEIPT_VERSION = "KI-CR-v1.1.0"


def principal_id(user_pk: int) -> str:
    """A stable pseudonymous principal id: receipts stay provable without naming the person."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"principal:{user_pk}".encode(), hashlib.sha256).hexdigest()
    return f"urn:privacy-portal:principal:{digest[:32]}"


def receipt_language(user: "User") -> str:
    """The consumer's language: the one they chose, else the one they are using now (a shipped code)."""
    return language_of(user.language or translation.get_language())


def _document(
    *,
    user: "User",
    method: str,
    event: str,
    state: str,
    purpose: Purpose,
    version: PurposeVersion,
    categories: list[DataCategory],
    third_parties: list[dict[str, str]],
    validity: dict[str, Any],
    withdrawal: dict[str, Any],
    receipt_id: str,
    issued_at: Any,
) -> dict[str, Any]:
    """The Kantara receipt shared by consents and connected-app grants, its texts in the consumer's language."""
    language = receipt_language(user)
    notice = version.in_language(language)
    controller = settings.PORTAL_CONTROLLER
    return {
        "version": RECEIPT_VERSION,
        "jurisdiction": controller["jurisdiction"],
        "consentTimestamp": int(issued_at.timestamp()),
        "issuedAt": issued_at.isoformat(),
        "collectionMethod": method,
        "consentReceiptID": receipt_id,
        # Kantara: the language in which consent was obtained, as ISO 639-1; the texts below are in it.
        "language": language.split("-")[0],
        "piiPrincipalId": principal_id(user.pk),
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
        "state": state,
        "services": [
            {
                "service": notice.name or purpose.name,
                "purposes": [
                    {
                        "purposeId": purpose.slug,
                        "purpose": notice.description,
                        "purposeCategory": [purpose.category] if purpose.category else [],
                        "legalBasis": purpose.legal_basis,
                        "consentType": "EXPLICIT" if method != "gpc" else "OPT-OUT-SIGNAL",
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
        "validity": validity,
        "withdrawal": withdrawal,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _third_parties(purpose_id: int) -> list[dict[str, str]]:
    """The partners receiving data for the purpose now, as a receipt names them."""
    sharings = Sharing.objects.filter(purpose_id=purpose_id, is_active=True).select_related("partner")
    return [
        {"name": s.partner.name, "kind": s.partner.kind, "country": s.partner.country}
        for s in sharings.order_by("partner__name")
    ]


@dataclass(frozen=True)
class ReceiptBatch:
    """What the receipts of a batch of consents of one purpose share (``receipt_batch_prepare``)."""

    third_parties: list[dict[str, str]]
    withdrawal_url: str


def receipt_batch_prepare(*, purpose_id: int) -> ReceiptBatch:
    """Read what a batch's receipts share, before the batch locks anything.

    ``reverse`` imports the whole URLconf the first time a worker process calls it, which took
    seconds on a busy machine: done here, it no longer lengthens the first batch's locks.
    """
    return ReceiptBatch(_third_parties(purpose_id), settings.SITE_URL + reverse("consents:list"))


def receipt_payload(
    *,
    consent: Consent,
    event: str,
    receipt_id: str,
    issued_at: Any,
    categories: list[DataCategory] | None = None,
    batch: ReceiptBatch | None = None,
) -> dict[str, Any]:
    """The receipt document of one consent event; ``receipts_issue`` passes the parts a batch shares."""
    if categories is None:
        categories = list(consent.version.data_categories.order_by("slug"))
    if batch is None:
        batch = receipt_batch_prepare(purpose_id=consent.purpose_id)
    return _document(
        user=consent.user,
        method=consent.method,
        event=event,
        state=consent.status,
        purpose=consent.purpose,
        version=consent.version,
        categories=categories,
        third_parties=batch.third_parties,
        validity={
            "durationType": consent.duration_type,
            "periodDays": consent.period_days,
            "grantedAt": _iso(consent.granted_at),
            "expiresAt": _iso(consent.expires_at),
            "revokedAt": _iso(consent.revoked_at),
        },
        withdrawal={
            "method": "web",
            "url": batch.withdrawal_url,
            "reason": consent.revocation_reason or None,
            "initiator": consent.changed_by if event != ReceiptEvent.GRANTED else None,
        },
        receipt_id=receipt_id,
        issued_at=issued_at,
    )


def app_grant_receipt_payload(*, grant: AppGrant, event: str, receipt_id: str, issued_at: Any) -> dict[str, Any]:
    """A connected app's grant as a receipt: its own categories, the app's partner as the one recipient."""
    partner = grant.app.partner
    document = _document(
        user=grant.user,
        method=ConsentMethod.WEB,
        event=event,
        state=grant.status,
        purpose=grant.purpose,
        version=grant.version,
        categories=list(grant.data_categories.order_by("slug")),
        third_parties=[{"name": partner.name, "kind": partner.kind, "country": partner.country}],
        validity={
            "durationType": grant.duration_type,
            "periodDays": None,
            "lookbackDays": grant.lookback_days,
            "grantedAt": _iso(grant.granted_at),
            "expiresAt": _iso(grant.expires_at),
            "revokedAt": _iso(grant.revoked_at),
        },
        withdrawal={
            "method": "web",
            "url": settings.SITE_URL + reverse("connected:list"),
            "reason": grant.revocation_reason or None,
            "initiator": grant.changed_by if event != ReceiptEvent.GRANTED else None,
        },
        receipt_id=receipt_id,
        issued_at=issued_at,
    )
    document["connectedApp"] = {"grantId": str(grant.pk), "app": grant.app.name, "partner": partner.name}
    return document


def receipt_issue(*, consent: Consent, event: str) -> ConsentReceipt:
    """Create and sign the receipt for one consent event (called inside the consent service's transaction)."""
    receipt = ConsentReceipt(user_id=consent.user_id, consent=consent, event=event, issued_at=timezone.now())
    receipt.payload = receipt_payload(
        consent=consent, event=event, receipt_id=str(receipt.id), issued_at=receipt.issued_at
    )
    return _signed(receipt)


def receipts_issue(*, consents: list[Consent], event: str, batch: ReceiptBatch) -> list[ConsentReceipt]:
    """``receipt_issue`` for a batch of consents of one purpose: the same signed documents, one insert.

    The recipients (in ``batch``) and each notice's data categories are read once for the batch, not once
    per consent; each receipt is still signed on its own.
    """
    if not consents:
        return []
    categories: dict[int, list[DataCategory]] = {}
    issued_at = timezone.now()
    receipts = []
    for consent in consents:
        if consent.version_id not in categories:
            categories[consent.version_id] = list(consent.version.data_categories.order_by("slug"))
        receipt = ConsentReceipt(user_id=consent.user_id, consent=consent, event=event, issued_at=issued_at)
        receipt.payload = receipt_payload(
            consent=consent,
            event=event,
            receipt_id=str(receipt.id),
            issued_at=issued_at,
            categories=categories[consent.version_id],
            batch=batch,
        )
        receipts.append(_sign(receipt))
    return ConsentReceipt.objects.bulk_create(receipts)


def app_grant_receipt_issue(*, grant: AppGrant, event: str) -> ConsentReceipt:
    """Create and sign the receipt for one event of a connected app's grant (inside the grant service's transaction)."""
    receipt = ConsentReceipt(user_id=grant.user_id, app_grant=grant, event=event, issued_at=timezone.now())
    receipt.payload = app_grant_receipt_payload(
        grant=grant, event=event, receipt_id=str(receipt.id), issued_at=receipt.issued_at
    )
    return _signed(receipt)


def _sign(receipt: ConsentReceipt) -> ConsentReceipt:
    receipt.jws = document_sign(receipt.payload)
    receipt.sha256 = hashlib.sha256(receipt.jws.encode()).hexdigest()
    return receipt


def _signed(receipt: ConsentReceipt) -> ConsentReceipt:
    _sign(receipt)
    receipt.save()
    return receipt
