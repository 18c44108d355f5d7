"""Consumers' consents and their signed receipts."""

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from consents.models.notices import DurationType, Purpose, PurposeVersion

if TYPE_CHECKING:
    from portal.models import User


class ConsentStatus(models.TextChoices):
    GRANTED = "granted", _("Granted")
    REVOKED = "revoked", _("Withdrawn")
    EXPIRED = "expired", _("Expired")
    RECONSENT_REQUIRED = "reconsent_required", _("Needs your decision again")


class ConsentMethod(models.TextChoices):
    WEB = "web", _("On this website")
    API = "api", _("Through a partner")
    GPC = "gpc", _("Global Privacy Control signal")
    IMPORT = "import", _("Imported")


class RevocationReason(models.TextChoices):
    USER_ACTION = "user_action", _("You withdrew it")
    BUSINESS_RULE = "business_rule", _("Business rule")
    EXPIRED = "expired", _("It expired")
    ACCOUNT_DELETED = "account_deleted", _("Account deleted")
    # Connected apps only: a newer approval for the same app and purpose took this one's place,
    # or the app never exchanged its code, so the connection was never made.
    REPLACED = "replaced", _("You connected the app again")
    INCOMPLETE = "incomplete", _("The app did not finish connecting")


class Initiator(models.TextChoices):
    CONSUMER = "consumer", _("You")
    STAFF = "staff", _("Our staff")
    PARTNER = "partner", _("A partner")
    SYSTEM = "system", _("Automatically")


class ConsentQuerySet(models.QuerySet["Consent"]):
    def for_user(self, user: "User") -> "ConsentQuerySet":
        return self.filter(user=user)

    def active(self, at: datetime | None = None) -> "ConsentQuerySet":
        at = at or timezone.now()
        return self.filter(status=ConsentStatus.GRANTED).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at))

    def due_to_expire(self, at: datetime | None = None) -> "ConsentQuerySet":
        return self.filter(status=ConsentStatus.GRANTED, expires_at__lte=at or timezone.now())

    def reminder_due(self, at: datetime | None = None) -> "ConsentQuerySet":
        """Running time-bound consents that end within the reminder period and were not reminded yet.

        Consents whose whole period is no longer than the reminder period are left out: the
        consumer chose that short period moments ago and saw its end date then.
        """
        at = at or timezone.now()
        days = settings.CONSENT_EXPIRY_REMINDER_DAYS
        return self.filter(
            status=ConsentStatus.GRANTED,
            duration_type=DurationType.TIME_BOUND,
            period_days__gt=days,
            reminder_sent_at__isnull=True,
            expires_at__gt=at,
            expires_at__lte=at + timedelta(days=days),
        )


class Consent(models.Model):
    """One consumer's current decision about one purpose. History keeps every earlier state."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("consumer"), on_delete=models.CASCADE, related_name="consents"
    )
    purpose = models.ForeignKey(Purpose, verbose_name=_("purpose"), on_delete=models.PROTECT, related_name="consents")
    version = models.ForeignKey(
        PurposeVersion, verbose_name=_("notice version"), on_delete=models.PROTECT, related_name="consents"
    )
    status = models.CharField(_("status"), max_length=24, choices=ConsentStatus.choices)
    method = models.CharField(_("method"), max_length=16, choices=ConsentMethod.choices)
    duration_type = models.CharField(
        _("duration"), max_length=16, choices=DurationType.choices, default=DurationType.PERSISTENT
    )
    period_days = models.PositiveIntegerField(_("period (days)"), null=True, blank=True)
    granted_at = models.DateTimeField(_("granted at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("withdrawn at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    revocation_reason = models.CharField(
        _("withdrawal reason"), max_length=24, choices=RevocationReason.choices, blank=True
    )
    revocation_note = models.CharField(_("consumer's note"), max_length=500, blank=True)
    changed_by = models.CharField(_("last changed by"), max_length=16, choices=Initiator.choices)
    reminder_sent_at = models.DateTimeField(_("expiry reminder sent at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    objects = ConsentQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        constraints = [
            models.UniqueConstraint(fields=["user", "purpose"], name="consent_unique_user_purpose"),
            models.CheckConstraint(
                condition=~Q(status="granted") | Q(granted_at__isnull=False), name="consent_granted_has_granted_at"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["revoked", "expired"]) | Q(revoked_at__isnull=False),
                name="consent_ended_has_revoked_at",
            ),
            models.CheckConstraint(
                condition=~Q(duration_type="time_bound") | (Q(period_days__gt=0) & Q(expires_at__isnull=False)),
                name="consent_time_bound_has_expiry",
            ),
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=True) | Q(granted_at__isnull=True) | Q(revoked_at__gte=F("granted_at")),
                name="consent_revoked_after_granted",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "status"], name="consent_by_user_status"),
            models.Index(fields=["status", "expires_at"], name="consent_expiry_due"),
            models.Index(fields=["purpose", "status"], name="consent_by_purpose_status"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.purpose}: {self.status}"

    def get_absolute_url(self) -> str:
        return reverse("consents:list") + f"#purpose-{self.purpose.slug}"

    @property
    def is_active(self) -> bool:
        return self.status == ConsentStatus.GRANTED and (self.expires_at is None or self.expires_at > timezone.now())


class ReceiptEvent(models.TextChoices):
    GRANTED = "granted", _("Consent given")
    REVOKED = "revoked", _("Consent withdrawn")
    EXPIRED = "expired", _("Consent expired")
    RECONSENT_REQUIRED = "reconsent_required", _("New notice: decision needed")


class ConsentReceipt(models.Model):
    """A signed record (JWS, Ed25519) of one consent event, in the Kantara / ISO 27560 shape.

    It records either a purpose-wide consent or a connected app's grant, never both.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="consent_receipts")
    consent = models.ForeignKey(Consent, on_delete=models.CASCADE, null=True, blank=True, related_name="receipts")
    app_grant = models.ForeignKey(
        "consents.AppGrant", on_delete=models.CASCADE, null=True, blank=True, related_name="receipts"
    )
    event = models.CharField(_("event"), max_length=24, choices=ReceiptEvent.choices)
    issued_at = models.DateTimeField(_("issued at"), default=timezone.now)
    payload = models.JSONField(_("receipt"))
    jws = models.TextField(_("signed receipt (JWS)"))
    sha256 = models.CharField(_("SHA-256 of the JWS"), max_length=64)

    class Meta:
        ordering = ["-issued_at"]
        verbose_name = _("consent receipt")
        verbose_name_plural = _("consent receipts")
        indexes = [models.Index(fields=["user", "-issued_at"], name="receipt_by_user_recent")]
        constraints = [
            models.CheckConstraint(
                condition=Q(consent__isnull=False, app_grant__isnull=True)
                | Q(consent__isnull=True, app_grant__isnull=False),
                name="receipt_consent_xor_app_grant",
            ),
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def purpose(self) -> Purpose:
        """The purpose of the consent or the connected app's grant the receipt records."""
        if self.app_grant is not None:
            return self.app_grant.purpose
        assert self.consent is not None  # the check constraint: one of the two is set
        return self.consent.purpose
