"""Partners (data recipients), what each receives for which purpose, and pairwise subject ids."""

import base64
import secrets
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from consents.countries import country_name
from consents.models.fields import EncryptedSecretField
from consents.models.notices import TRANSLATIONS_HELP, DataCategory, Purpose
from consents.models.translations import TranslatedMixin, Translations

if TYPE_CHECKING:
    pass


class PartnerKind(models.TextChoices):
    INTERNAL = "internal", _("Internal team")
    SERVICE_PROVIDER = "service_provider", _("Service provider")
    ADVERTISER = "advertiser", _("Advertiser")
    AFFILIATE = "affiliate", _("Affiliate")
    DATA_BROKER = "data_broker", _("Data broker")
    ACQUIRER = "acquirer", _("Acquirer")

    @property
    def explanation(self) -> str:
        """What this kind of partner is, in a few plain words for consumers."""
        return str(_KIND_EXPLANATIONS[self])


_KIND_EXPLANATIONS = {
    PartnerKind.INTERNAL: _("people in our own organisation who work on this purpose"),
    PartnerKind.SERVICE_PROVIDER: _("a company that handles data only on our instructions, for example to send emails"),
    PartnerKind.ADVERTISER: _("a company that uses data to choose which adverts to show you"),
    PartnerKind.AFFILIATE: _("a separate company in the same group as us"),
    PartnerKind.DATA_BROKER: _("a company that collects and sells data about people"),
    PartnerKind.ACQUIRER: _("a bank or payment company that processes card payments for shops"),
}


class PartnerStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")


def webhook_secret_generate() -> str:
    # Standard Webhooks secrets are standard (not URL-safe) base64 of the key bytes; the
    # standardwebhooks library and other verifiers cannot decode URL-safe alphabets reliably.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Partner(TranslatedMixin, models.Model):
    """A company that receives consumers' data for one or more purposes."""

    slug = models.SlugField(_("identifier"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=160)
    kind = models.CharField(_("kind"), max_length=24, choices=PartnerKind.choices)
    country = models.CharField(_("country"), max_length=2, help_text=_("ISO 3166-1 alpha-2 code."))
    policy_url = models.URLField(_("privacy policy"), blank=True)
    retention = models.TextField(
        _("retention of shared data"),
        blank=True,
        help_text=_(
            "What the partner does with data it already received once a consumer withdraws: how long it keeps "
            "it and why. Shown to consumers before they withdraw."
        ),
    )
    # {language: {"retention"}}; ``retention`` holds the default language's (see translations.py).
    translations: Translations = models.JSONField(
        _("translations"), default=dict, blank=True, editable=False, help_text=TRANSLATIONS_HELP
    )  # type: ignore[assignment]
    status = models.CharField(_("status"), max_length=16, choices=PartnerStatus.choices, default=PartnerStatus.ACTIVE)
    webhook_url = models.URLField(_("webhook URL"), blank=True)
    # Encrypted at rest (see consents/models/fields.py); the columns hold Fernet tokens.
    webhook_secret = EncryptedSecretField(_("webhook signing secret"), max_length=255, default=webhook_secret_generate)
    webhook_secret_previous = EncryptedSecretField(
        _("previous signing secret"),
        max_length=255,
        blank=True,
        help_text=_("Still signed with during a rotation, until it expires."),
    )
    # Empty with a previous secret: rotated before overlaps expired, so signed with until cleared.
    webhook_secret_previous_expires_at = models.DateTimeField(
        _("previous signing secret expires at"), null=True, blank=True
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

    def webhook_signing_secrets(self, *, at: datetime) -> list[str]:
        """The secrets a delivery at ``at`` is signed with: the current one, and the previous one during its overlap."""
        return webhook_signing_secrets(
            secret=self.webhook_secret,
            previous=self.webhook_secret_previous,
            previous_expires_at=self.webhook_secret_previous_expires_at,
            at=at,
        )

    @property
    def country_name(self) -> str:
        """The country's full name in the active language ("Germany", "德国"), not its code."""
        return country_name(self.country)

    @property
    def kind_explanation(self) -> str:
        """The kind and what it means, e.g. "Data broker — a company that collects and sells data about people"."""
        return _("%(kind)s — %(explanation)s") % {
            "kind": self.get_kind_display(),
            "explanation": PartnerKind(self.kind).explanation,
        }


def webhook_signing_secrets(
    *, secret: str, previous: str, previous_expires_at: datetime | None, at: datetime
) -> list[str]:
    """The current secret, plus the previous one while its overlap lasts (``Partner.webhook_signing_secrets``)."""
    if previous and (previous_expires_at is None or at < previous_expires_at):
        return [secret, previous]
    return [secret]


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


# Self-service on the partner's own webhook settings; granted only when staff choose it, never by default.
WEBHOOKS_MANAGE_SCOPE = "webhooks:manage"
PARTNER_SCOPES = ("consents:read", "events:read", "access:write", "acks:write", WEBHOOKS_MANAGE_SCOPE)
PARTNER_DEFAULT_SCOPES = tuple(scope for scope in PARTNER_SCOPES if scope != WEBHOOKS_MANAGE_SCOPE)


def partner_scopes_default() -> str:
    return " ".join(PARTNER_DEFAULT_SCOPES)


class PartnerCredential(models.Model):
    """An OAuth 2.0 client (client-credentials grant) through which a partner calls the API.

    The client secret lives hashed on the application; it is shown to staff once, when created or
    rotated. A partner may hold several credentials so that a new one can be rolled out before
    the old one is revoked.
    """

    partner = models.ForeignKey(
        Partner, verbose_name=_("partner"), on_delete=models.CASCADE, related_name="credentials"
    )
    application = models.OneToOneField(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL,
        verbose_name=_("OAuth application"),
        on_delete=models.PROTECT,
        related_name="partner_credential",
    )
    label = models.CharField(_("label"), max_length=120, help_text=_("For example: production, staging."))
    scopes = models.CharField(
        _("scopes"),
        max_length=200,
        default=partner_scopes_default,
        help_text=_("The API scopes this credential may ask for, separated by spaces."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    rotated_at = models.DateTimeField(_("secret rotated at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        ordering = ["partner", "-created_at"]
        verbose_name = _("partner API credential")
        verbose_name_plural = _("partner API credentials")

    def __str__(self) -> str:
        return f"{self.partner} · {self.label}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()
