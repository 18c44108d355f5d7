"""Purposes, their versioned notices, partners, what each receives, and consumers' consents."""

import secrets
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

if TYPE_CHECKING:
    from portal.models import User


class DataCategory(models.Model):
    slug = models.SlugField(_("identifier"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=120)
    description = models.TextField(_("description"), blank=True)
    sensitive = models.BooleanField(
        _("sensitive"), default=False, help_text=_("Special-category or financial data that needs extra care.")
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name = _("data category")
        verbose_name_plural = _("data categories")

    def __str__(self) -> str:
        return self.name


class LegalBasis(models.TextChoices):
    CONSENT = "consent", _("Your consent")
    CONTRACT = "contract", _("Needed to provide the service you signed up for")
    LEGAL_OBLIGATION = "legal_obligation", _("Required by law")
    LEGITIMATE_INTEREST = "legitimate_interest", _("Our legitimate interest")


class DurationType(models.TextChoices):
    ONE_TIME = "one_time", _("One time")
    PERSISTENT = "persistent", _("Until you withdraw it")
    TIME_BOUND = "time_bound", _("For a limited period")


class PurposeQuerySet(models.QuerySet["Purpose"]):
    def published(self) -> "PurposeQuerySet":
        return self.filter(is_active=True, current_version__isnull=False)


class Purpose(models.Model):
    slug = models.SlugField(_("identifier"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=160)
    category = models.CharField(
        _("purpose category"), max_length=120, blank=True, help_text=_("For example: marketing, security, research.")
    )
    legal_basis = models.CharField(_("legal basis"), max_length=24, choices=LegalBasis.choices)
    gpc_covered = models.BooleanField(
        _("covered by Global Privacy Control"),
        default=False,
        help_text=_("Sale or sharing of data or targeted advertising: a browser's GPC signal opts the consumer out."),
    )
    default_duration_type = models.CharField(
        _("default duration"), max_length=16, choices=DurationType.choices, default=DurationType.PERSISTENT
    )
    default_period_days = models.PositiveIntegerField(
        _("default period (days)"), null=True, blank=True, help_text=_("Only for time-bound consent.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    current_version = models.ForeignKey(
        "PurposeVersion",
        verbose_name=_("current notice"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )

    objects = PurposeQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["position", "name"]
        verbose_name = _("purpose")
        verbose_name_plural = _("purposes")
        constraints = [
            models.CheckConstraint(
                condition=~Q(default_duration_type="time_bound") | Q(default_period_days__gt=0),
                name="purpose_time_bound_has_period",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_essential(self) -> bool:
        """Purposes with a legal basis other than consent are shown but cannot be refused."""
        return self.legal_basis != LegalBasis.CONSENT


class PurposeVersion(models.Model):
    """The notice a consumer saw for a purpose: immutable once published."""

    purpose = models.ForeignKey(Purpose, verbose_name=_("purpose"), on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(_("version"))
    description = models.TextField(_("plain-language description"))
    retention = models.CharField(_("retention"), max_length=255, help_text=_("How long the data is kept."))
    data_categories = models.ManyToManyField(DataCategory, verbose_name=_("data categories"), related_name="+")
    material = models.BooleanField(
        _("material change"), default=False, help_text=_("Consumers who agreed to an older version must agree again.")
    )
    change_summary = models.TextField(_("change summary"), blank=True)
    published_at = models.DateTimeField(_("published at"), default=timezone.now)

    history = HistoricalRecords(m2m_fields=[data_categories])

    class Meta:
        ordering = ["purpose", "-number"]
        verbose_name = _("notice version")
        verbose_name_plural = _("notice versions")
        constraints = [
            models.UniqueConstraint(fields=["purpose", "number"], name="purposeversion_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} v{self.number}"


class PartnerKind(models.TextChoices):
    INTERNAL = "internal", _("Internal team")
    SERVICE_PROVIDER = "service_provider", _("Service provider")
    ADVERTISER = "advertiser", _("Advertiser")
    AFFILIATE = "affiliate", _("Affiliate")
    DATA_BROKER = "data_broker", _("Data broker")
    ACQUIRER = "acquirer", _("Acquirer")


class PartnerStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")


def webhook_secret_generate() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class Partner(models.Model):
    """A company that receives consumers' data for one or more purposes."""

    slug = models.SlugField(_("identifier"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=160)
    kind = models.CharField(_("kind"), max_length=24, choices=PartnerKind.choices)
    country = models.CharField(_("country"), max_length=2, help_text=_("ISO 3166-1 alpha-2 code."))
    policy_url = models.URLField(_("privacy policy"), blank=True)
    status = models.CharField(_("status"), max_length=16, choices=PartnerStatus.choices, default=PartnerStatus.ACTIVE)
    webhook_url = models.URLField(_("webhook URL"), blank=True)
    webhook_secret = models.CharField(_("webhook signing secret"), max_length=80, default=webhook_secret_generate)
    webhook_secret_previous = models.CharField(
        _("previous signing secret"),
        max_length=80,
        blank=True,
        help_text=_("Still signed with during a rotation, until cleared."),
    )
    webhook_disabled_at = models.DateTimeField(_("webhook disabled at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    history = HistoricalRecords(excluded_fields=["webhook_secret", "webhook_secret_previous"])

    class Meta:
        ordering = ["name"]
        verbose_name = _("partner")
        verbose_name_plural = _("partners")

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == PartnerStatus.ACTIVE


class Sharing(models.Model):
    """Which data categories a partner receives for which purpose."""

    partner = models.ForeignKey(Partner, verbose_name=_("partner"), on_delete=models.CASCADE, related_name="sharings")
    purpose = models.ForeignKey(Purpose, verbose_name=_("purpose"), on_delete=models.CASCADE, related_name="sharings")
    data_categories = models.ManyToManyField(DataCategory, verbose_name=_("data categories"), related_name="+")
    is_active = models.BooleanField(_("active"), default=True)

    history = HistoricalRecords(m2m_fields=[data_categories])

    class Meta:
        ordering = ["purpose", "partner"]
        verbose_name = _("sharing")
        verbose_name_plural = _("sharings")
        constraints = [
            models.UniqueConstraint(fields=["partner", "purpose"], name="sharing_unique_partner_purpose"),
        ]

    def __str__(self) -> str:
        return f"{self.partner} ← {self.purpose}"


def subject_id_generate() -> str:
    return "sub_" + secrets.token_urlsafe(18)


class PartnerSubject(models.Model):
    """A pairwise pseudonymous id for one consumer as seen by one partner."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="subjects")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="partner_subjects")
    subject_id = models.CharField(max_length=40, unique=True, default=subject_id_generate, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("partner subject id")
        verbose_name_plural = _("partner subject ids")
        constraints = [
            models.UniqueConstraint(fields=["partner", "user"], name="partnersubject_unique_pair"),
        ]

    def __str__(self) -> str:
        return self.subject_id


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
    """A signed record (JWS, Ed25519) of one consent event, in the Kantara / ISO 27560 shape."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="consent_receipts")
    consent = models.ForeignKey(Consent, on_delete=models.CASCADE, related_name="receipts")
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

    def __str__(self) -> str:
        return str(self.id)
