"""Reads for the consumer's receipts: the list, and one receipt's signed payload in plain language."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet, TextChoices
from django.utils import translation

from consents.countries import country_name
from consents.models import (
    ConsentMethod,
    ConsentReceipt,
    ConsentStatus,
    DataCategory,
    DurationType,
    Initiator,
    LegalBasis,
    PartnerKind,
    ReceiptEvent,
    RevocationReason,
)
from consents.models.translations import LocalizedText, language_of
from portal.models import User


def receipts_for(user: User) -> QuerySet[ConsentReceipt]:
    """The consumer's receipts, newest first, with what the list shows."""
    return (
        ConsentReceipt.objects.filter(user=user)
        .select_related("consent__purpose", "app_grant__purpose", "app_grant__app")
        .order_by("-issued_at", "-pk")
    )


def _label(choices: type[TextChoices], value: Any) -> str:
    """The translated label of a stored value; the value itself when the choice no longer exists."""
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value or "")


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class ThirdParty:
    name: str
    kind: str
    country: str


@dataclass
class ReadableReceipt:
    """A receipt's signed payload in plain language (the snapshot, not today's data)."""

    receipt: ConsentReceipt
    event: str
    state: str
    issued_at: datetime | None
    method: str
    consent_type: str
    jurisdiction: str
    principal_id: str
    controller: dict[str, Any]
    policy_url: str
    purpose_name: LocalizedText
    purpose_id: str
    description: LocalizedText
    purpose_categories: list[str]
    legal_basis: str
    essential: bool
    notice_version: Any
    notice_published_at: datetime | None
    retention: LocalizedText
    data_categories: list[str]
    sensitive_categories: list[str]
    third_parties: list[ThirdParty]
    duration: str
    period_days: Any
    granted_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    withdrawal_url: str
    withdrawal_reason: str
    initiator: str
    # The language the receipt's texts were issued in (a shipped language code).
    language: str = ""

    @classmethod
    def from_receipt(cls, receipt: ConsentReceipt, category_names: dict[str, str] | None = None) -> "ReadableReceipt":
        payload = receipt.payload
        names = category_names or {}
        service = (payload.get("services") or [{}])[0]
        purpose = (service.get("purposes") or [{}])[0]
        validity = payload.get("validity") or {}
        withdrawal = payload.get("withdrawal") or {}
        controllers = payload.get("piiControllers") or [{}]
        language = language_of(payload.get("language"))
        # Receipts name their categories in their own language; older ones only by slug.
        issued_names = dict(zip(purpose.get("piiCategory") or [], purpose.get("piiCategoryNames") or [], strict=False))
        names = issued_names or names
        return cls(
            receipt=receipt,
            event=_label(ReceiptEvent, payload.get("event")),
            state=_label(ConsentStatus, payload.get("state")),
            issued_at=_when(payload.get("issuedAt")),
            method=_label(ConsentMethod, payload.get("collectionMethod")),
            consent_type=str(purpose.get("consentType", "")),
            jurisdiction=str(payload.get("jurisdiction", "")),
            principal_id=str(payload.get("piiPrincipalId", "")),
            controller=controllers[0],
            policy_url=str(payload.get("policyUrl", "")),
            purpose_name=LocalizedText(str(service.get("service", "")), language),
            purpose_id=str(purpose.get("purposeId", "")),
            description=LocalizedText(str(purpose.get("purpose", "")), language),
            purpose_categories=list(purpose.get("purposeCategory") or []),
            legal_basis=_label(LegalBasis, purpose.get("legalBasis")),
            essential=bool(purpose.get("primaryPurpose")),
            notice_version=purpose.get("noticeVersion"),
            notice_published_at=_when(purpose.get("noticePublishedAt")),
            retention=LocalizedText(str(purpose.get("termination", "")), language),
            data_categories=[names.get(slug, slug) for slug in purpose.get("piiCategory") or []],
            sensitive_categories=[names.get(slug, slug) for slug in payload.get("spiCat") or []],
            third_parties=[
                # The signed payload keeps the ISO code; people read the country's name in the page's language.
                ThirdParty(
                    str(t.get("name", "")), _label(PartnerKind, t.get("kind")), country_name(str(t.get("country", "")))
                )
                for t in purpose.get("thirdParties") or []
            ],
            duration=_label(DurationType, validity.get("durationType")),
            period_days=validity.get("periodDays"),
            granted_at=_when(validity.get("grantedAt")),
            expires_at=_when(validity.get("expiresAt")),
            revoked_at=_when(validity.get("revokedAt")),
            withdrawal_url=str(withdrawal.get("url", "")),
            withdrawal_reason=_label(RevocationReason, withdrawal.get("reason")) if withdrawal.get("reason") else "",
            initiator=_label(Initiator, withdrawal.get("initiator")) if withdrawal.get("initiator") else "",
            language=language,
        )

    @property
    def data_categories_text(self) -> LocalizedText:
        """The data categories as one text, in the receipt's language when it named them."""
        text = ", ".join(self.data_categories)
        named = bool(_category_names(self.receipt.payload))
        return LocalizedText(text, self.language if named else language_of(translation.get_language()))


def readable_receipt(receipt: ConsentReceipt) -> ReadableReceipt:
    """The receipt in plain language, with data categories named (one query)."""
    slugs = set(receipt.payload.get("spiCat") or [])
    for service in receipt.payload.get("services") or []:
        for purpose in service.get("purposes") or []:
            slugs.update(purpose.get("piiCategory") or [])
    if _category_names(receipt.payload):
        return ReadableReceipt.from_receipt(receipt)
    names = {c.slug: str(c.l10n.name) for c in DataCategory.objects.filter(slug__in=slugs)}
    return ReadableReceipt.from_receipt(receipt, names)


def _category_names(payload: dict[str, Any]) -> list[str]:
    purposes = ((payload.get("services") or [{}])[0].get("purposes")) or [{}]
    return list(purposes[0].get("piiCategoryNames") or [])
