"""Every action the audit log records, with the label staff and consumers read.

The values are what ``AuditEvent.action`` stores (and what the seal covers), so they never change;
a new kind of event gets a new member (as Zulip's ``AuditLogEventType``).
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditAction(models.TextChoices):
    # Consents and notices
    CONSENT_GRANTED = "consent.granted", _("Consent given")
    CONSENT_REVOKED = "consent.revoked", _("Consent withdrawn")
    CONSENT_EXPIRED = "consent.expired", _("Consent expired")
    CONSENT_RECONSENT_REQUIRED = "consent.reconsent_required", _("New notice: decision needed")
    CONSENT_EXPIRY_REMINDER_SENT = "consent.expiry_reminder_sent", _("Consent expiry reminder sent")
    GPC_HONOURED = "gpc.honoured", _("Global Privacy Control signal honoured")
    PURPOSE_VERSION_PUBLISHED = "purpose.version_published", _("Purpose notice published")
    # Partners and their deliveries
    PARTNER_CREDENTIAL_CREATED = "partner.credential_created", _("Partner API credential created")
    PARTNER_CREDENTIAL_ROTATED = "partner.credential_rotated", _("Partner API credential rotated")
    PARTNER_CREDENTIAL_REVOKED = "partner.credential_revoked", _("Partner API credential revoked")
    PARTNER_EVENT_ACKNOWLEDGED = "partner.event_acknowledged", _("Partner acknowledged an event")
    PARTNER_WEBHOOK_DISABLED = "partner.webhook_disabled", _("Partner webhook disabled")
    PARTNER_WEBHOOK_ENABLED = "partner.webhook_enabled", _("Partner webhook enabled")
    PARTNER_WEBHOOK_SECRET_ROTATED = "partner.webhook_secret_rotated", _("Partner webhook secret rotated")
    PARTNER_WEBHOOK_URL_CHANGED = "partner.webhook_url_changed", _("Partner webhook URL changed")
    PARTNER_WEBHOOK_TEST_SENT = "partner.webhook_test_sent", _("Partner test event sent")
    PARTNER_SUSPENDED = "partner.suspended", _("Partner suspended")
    PARTNER_RESUMED = "partner.resumed", _("Partner reinstated")
    OUTBOX_EVENT_REDRIVEN = "outbox.event_redriven", _("Partner event sent again")
    # Access to consumers' data and to the audit log
    ACCESS_STAFF_VIEWED = "access.staff_viewed", _("Staff opened a consumer's records")
    AUDIT_TRAIL_EXPORTED = "audit.trail_exported", _("Audit trail exported")
    # Privacy requests
    PRIVACY_REQUEST_RECEIVED = "privacy_request.received", _("Privacy request received")
    PRIVACY_REQUEST_PROCESSING = "privacy_request.processing", _("Privacy request being processed")
    PRIVACY_REQUEST_WAITING_PARTNERS = "privacy_request.waiting_partners", _("Privacy request waiting for partners")
    PRIVACY_REQUEST_COMPLETED = "privacy_request.completed", _("Privacy request completed")
    PRIVACY_REQUEST_REJECTED = "privacy_request.rejected", _("Privacy request rejected")
    PRIVACY_REQUEST_CANCELLED = "privacy_request.cancelled", _("Privacy request cancelled")
    PRIVACY_REQUEST_DOWNLOADED = "privacy_request.downloaded", _("Data export downloaded")
    PRIVACY_REQUEST_FILE_DELETED = "privacy_request.file_deleted", _("Data export file deleted")
    PRIVACY_REQUEST_ERASURE_REQUESTED = "privacy_request.erasure_requested", _("Partners asked to erase data")
    PRIVACY_REQUEST_PARTNER_ACKNOWLEDGED = "privacy_request.partner_acknowledged", _("Partner confirmed the erasure")
    PRIVACY_REQUEST_PARTNER_FAILED = "privacy_request.partner_failed", _("Partner reported a failed erasure")
    PRIVACY_REQUEST_PARTNER_RECORDED = "privacy_request.partner_recorded", _("Partner confirmation recorded by staff")
    PRIVACY_REQUEST_EXTENDED = "privacy_request.extended", _("Privacy request deadline extended")
    PRIVACY_REQUEST_ESCALATED = "privacy_request.escalated", _("Overdue privacy request escalated")
    PRIVACY_REQUEST_RETENTION_APPLIED = "privacy_request.retention_applied", _("Privacy request retention applied")
    CONSENT_PROOF_PURGED = "consent_proof.purged", _("Expired consent proofs purged")
    ACCESS_EVENTS_PURGED = "access_events.purged", _("Access events past their retention deleted")
    # Accounts
    PROFILE_UPDATED = "profile.updated", _("Profile updated")
    ACCOUNT_SCRUBBED = "account.scrubbed", _("Account erased")
    ACCOUNT_FREE_TEXT_SCRUBBED = "account.free_text_scrubbed", _("Free text erased with the account")
    SECURITY_SIGNED_UP = "security.signed_up", _("Account created")
    SECURITY_LOGGED_IN = "security.logged_in", _("Signed in")
    SECURITY_PASSWORD_CHANGED = "security.password_changed", _("Password changed")
    SECURITY_PASSWORD_SET = "security.password_set", _("Password set")
    SECURITY_PASSWORD_RESET = "security.password_reset", _("Password reset")
    SECURITY_EMAIL_ADDED = "security.email_added", _("Email address added")
    SECURITY_EMAIL_REMOVED = "security.email_removed", _("Email address removed")
    SECURITY_EMAIL_CHANGED = "security.email_changed", _("Primary email address changed")
    SECURITY_EMAIL_CONFIRMED = "security.email_confirmed", _("Email address confirmed")
    SECURITY_MFA_ADDED = "security.mfa_added", _("Two-factor authentication turned on")
    SECURITY_MFA_REMOVED = "security.mfa_removed", _("Two-factor authentication turned off")
    SECURITY_MFA_RESET = "security.mfa_reset", _("Recovery codes regenerated")

    @classmethod
    def label_of(cls, value: str) -> str:
        """The translated label of a stored action; one this version does not know reads as stored."""
        return str(cls(value).label) if value in cls.values else value


class AuditReason(models.TextChoices):
    """Why a consent ended, as audit events record it in ``data["reason"]`` (the consent's revocation reason).

    Kept here, beside the actions, because the audit log reads its own events without importing
    the apps that wrote them.
    """

    USER_ACTION = "user_action", _("you withdrew it")
    BUSINESS_RULE = "business_rule", _("one of our business rules")
    EXPIRED = "expired", _("it reached its end date")
    ACCOUNT_DELETED = "account_deleted", _("your account was deleted")

    @classmethod
    def label_of(cls, value: str) -> str:
        """The translated label of a stored reason; one this version does not know reads as stored."""
        return str(cls(value).label) if value in cls.values else value
