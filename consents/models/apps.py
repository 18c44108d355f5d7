"""Connected apps: a partner's app that consumers authorise here, and the grants they give it.

The app is an OAuth 2.0 client (authorisation code with PKCE, pushed authorisation requests and
rich authorisation details, as FAPI 2.0 profiles them). Its django-oauth-toolkit application is
created and kept in step by the portal's admin; staff never edit it directly. What a consumer
approves is an ``AppGrant``: narrower than a purpose-wide consent (one app, chosen categories, a
duration and a lookback), ended by the consumer, the partner, expiry or account deletion. The
codes and tokens issued under a grant are linked to it (``AppGrantToken``) so that ending the
grant revokes them in the same transaction.
"""

import secrets
import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from consents.models.consent import ConsentStatus, Initiator, RevocationReason
from consents.models.notices import DataCategory, DurationType, Purpose, PurposeVersion
from consents.models.partners import Partner


class ConnectedApp(models.Model):
    """A partner's application registered to ask consumers for access (an OAuth 2.0 client)."""

    partner = models.ForeignKey(Partner, verbose_name=_("partner"), on_delete=models.PROTECT, related_name="apps")
    application = models.OneToOneField(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL,
        verbose_name=_("OAuth application"),
        on_delete=models.PROTECT,
        related_name="connected_app",
    )
    name = models.CharField(_("name"), max_length=120, help_text=_("Shown to consumers on the consent screen."))
    redirect_uris = models.TextField(
        _("redirect URIs"), help_text=_("One per line, matched exactly. HTTPS outside development.")
    )
    purposes = models.ManyToManyField(Purpose, verbose_name=_("allowed purposes"), related_name="+")
    data_categories = models.ManyToManyField(DataCategory, verbose_name=_("allowed data categories"), related_name="+")
    max_duration_days = models.PositiveIntegerField(
        _("longest duration (days)"),
        null=True,
        blank=True,
        help_text=_("Longest time-bound access the app may ask for. Empty: it may also ask until withdrawn."),
    )
    max_lookback_days = models.PositiveIntegerField(
        _("longest lookback (days)"),
        null=True,
        blank=True,
        help_text=_("How far back the app may ask to read data. Empty: no limit."),
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
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)

    history = HistoricalRecords(m2m_fields=[purposes, data_categories])

    class Meta:
        ordering = ["partner", "name"]
        verbose_name = _("connected app")
        verbose_name_plural = _("connected apps")

    def __str__(self) -> str:
        return f"{self.name} ({self.partner})"

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None and self.partner.is_active

    @property
    def redirect_uri_list(self) -> list[str]:
        return self.redirect_uris.split()


REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"


def request_reference_generate() -> str:
    return secrets.token_urlsafe(32)


class PushedAuthorization(models.Model):
    """An authorisation request an app pushed (RFC 9126), waiting for the consumer's browser.

    ``parameters`` holds the validated request (redirect_uri, state, code_challenge and its
    method, authorization_details). The request_uri is ``REQUEST_URI_PREFIX + reference``; it
    is single use and short-lived.
    """

    app = models.ForeignKey(ConnectedApp, on_delete=models.CASCADE, related_name="pushed_requests")
    reference = models.CharField(max_length=64, unique=True, default=request_reference_generate, editable=False)
    parameters = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("pushed authorisation request")
        verbose_name_plural = _("pushed authorisation requests")
        indexes = [models.Index(fields=["expires_at"], name="par_by_expiry")]

    def __str__(self) -> str:
        return self.request_uri

    @property
    def request_uri(self) -> str:
        return REQUEST_URI_PREFIX + self.reference

    def is_usable(self, at: datetime | None = None) -> bool:
        return self.used_at is None and self.expires_at > (at or timezone.now())


class AppGrantQuerySet(models.QuerySet["AppGrant"]):
    def active(self, at: datetime | None = None) -> "AppGrantQuerySet":
        at = at or timezone.now()
        return self.filter(status=ConsentStatus.GRANTED).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at))


class AppGrant(models.Model):
    """What one consumer approved for one connected app: a purpose, chosen categories, how long, how far back.

    ``id`` is the grant id the app sees (token response, grant resource, introspection).
    ``authorization_details`` is the RFC 9396 object as granted, which may be narrower than asked.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    app = models.ForeignKey(ConnectedApp, verbose_name=_("app"), on_delete=models.PROTECT, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("consumer"), on_delete=models.CASCADE, related_name="app_grants"
    )
    purpose = models.ForeignKey(Purpose, verbose_name=_("purpose"), on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(
        PurposeVersion, verbose_name=_("notice version"), on_delete=models.PROTECT, related_name="+"
    )
    data_categories = models.ManyToManyField(DataCategory, verbose_name=_("data categories"), related_name="+")
    status = models.CharField(_("status"), max_length=24, choices=ConsentStatus.choices)
    duration_type = models.CharField(_("duration"), max_length=16, choices=DurationType.choices)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    lookback_days = models.PositiveIntegerField(_("lookback (days)"), null=True, blank=True)
    authorization_details = models.JSONField(_("authorisation details"))
    granted_at = models.DateTimeField(_("granted at"), default=timezone.now)
    # When the app first exchanged its code for tokens; until then the connection is not made.
    connected_at = models.DateTimeField(_("connected at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("withdrawn at"), null=True, blank=True)
    revocation_reason = models.CharField(
        _("withdrawal reason"), max_length=24, choices=RevocationReason.choices, blank=True
    )
    revocation_note = models.CharField(_("note"), max_length=500, blank=True)
    changed_by = models.CharField(_("last changed by"), max_length=16, choices=Initiator.choices)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    objects = AppGrantQuerySet.as_manager()
    history = HistoricalRecords(m2m_fields=[data_categories])

    class Meta:
        ordering = ["-granted_at"]
        verbose_name = _("connected-app grant")
        verbose_name_plural = _("connected-app grants")
        constraints = [
            models.CheckConstraint(
                condition=~Q(status__in=["revoked", "expired"]) | Q(revoked_at__isnull=False),
                name="appgrant_ended_has_revoked_at",
            ),
            models.CheckConstraint(
                condition=~Q(duration_type="time_bound") | Q(expires_at__isnull=False),
                name="appgrant_time_bound_has_expiry",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "status"], name="appgrant_by_user_status"),
            models.Index(fields=["status", "expires_at"], name="appgrant_expiry_due"),
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def is_active(self) -> bool:
        return self.status == ConsentStatus.GRANTED and (self.expires_at is None or self.expires_at > timezone.now())


class AppGrantToken(models.Model):
    """Links an authorisation code, access token or refresh token to the grant it was issued under.

    django-oauth-toolkit's tables cannot carry the grant; one row per issued code or token here
    lets introspection name the grant and lets ending a grant revoke everything it issued.
    """

    grant = models.ForeignKey(AppGrant, on_delete=models.CASCADE, related_name="token_links")
    code = models.OneToOneField(
        settings.OAUTH2_PROVIDER_GRANT_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="app_grant_link",
    )
    access_token = models.OneToOneField(
        settings.OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="app_grant_link",
    )
    refresh_token = models.OneToOneField(
        settings.OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="app_grant_link",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("connected-app token link")
        verbose_name_plural = _("connected-app token links")
        constraints = [
            models.CheckConstraint(
                condition=Q(code__isnull=False) | Q(access_token__isnull=False) | Q(refresh_token__isnull=False),
                name="appgranttoken_links_something",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.grant_id}"
