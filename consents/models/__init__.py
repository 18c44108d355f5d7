from consents.models.consent import (
    Consent,
    ConsentMethod,
    ConsentQuerySet,
    ConsentReceipt,
    ConsentStatus,
    Initiator,
    ReceiptEvent,
    RevocationReason,
)
from consents.models.feed import FeedSequencer
from consents.models.gpc import GpcSignal
from consents.models.notices import DataCategory, DurationType, LegalBasis, Purpose, PurposeQuerySet, PurposeVersion
from consents.models.outbox import DeliveryAttempt, DeliveryOutcome, DeliveryStatus, EventType, OutboxEvent
from consents.models.partners import (
    PARTNER_SCOPES,
    Partner,
    PartnerCredential,
    PartnerKind,
    PartnerStatus,
    PartnerSubject,
    Sharing,
    subject_id_generate,
    webhook_secret_generate,
)

__all__ = [
    "PARTNER_SCOPES",
    "Consent",
    "ConsentMethod",
    "ConsentQuerySet",
    "ConsentReceipt",
    "ConsentStatus",
    "DataCategory",
    "DeliveryAttempt",
    "DeliveryOutcome",
    "DeliveryStatus",
    "DurationType",
    "EventType",
    "FeedSequencer",
    "GpcSignal",
    "Initiator",
    "LegalBasis",
    "OutboxEvent",
    "Partner",
    "PartnerCredential",
    "PartnerKind",
    "PartnerStatus",
    "PartnerSubject",
    "Purpose",
    "PurposeQuerySet",
    "PurposeVersion",
    "ReceiptEvent",
    "RevocationReason",
    "Sharing",
    "subject_id_generate",
    "webhook_secret_generate",
]
