"""Every write in the consent domain: consents and notices, partner credentials, feed and acknowledgements."""

from consents.services.consent import (
    ConsentError,
    PurposeTerms,
    consent_expire,
    consent_grant,
    consent_reminder_mark,
    consent_revoke,
    gpc_signal_honour,
    partner_subject_ensure,
    partner_webhook_secret_rotate,
    purpose_version_publish,
    secret_fingerprint,
)
from consents.services.partners import (
    EventAckConflict,
    outbox_event_ack,
    outbox_feed_sequence,
    partner_credential_create,
    partner_credential_revoke,
    partner_credential_rotate,
)

__all__ = [
    "ConsentError",
    "EventAckConflict",
    "PurposeTerms",
    "consent_expire",
    "consent_grant",
    "consent_reminder_mark",
    "consent_revoke",
    "gpc_signal_honour",
    "outbox_event_ack",
    "outbox_feed_sequence",
    "partner_credential_create",
    "partner_credential_revoke",
    "partner_credential_rotate",
    "partner_subject_ensure",
    "partner_webhook_secret_rotate",
    "purpose_version_publish",
    "secret_fingerprint",
]
