"""Partners: their API credentials, webhook signing secrets and pairwise subject ids."""

import hashlib
from collections.abc import Iterable
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import AccessToken, Application, RefreshToken

from audit.actions import AuditAction
from audit.services import Actor, event_record
from consents.errors import DomainError
from consents.models import (
    PARTNER_SCOPES,
    Partner,
    PartnerCredential,
    PartnerStatus,
    PartnerSubject,
    webhook_secret_generate,
)
from consents.webhook_client import webhook_url_refusal
from portal.models import User

WEBHOOK_URL_MAX_LENGTH: int = Partner._meta.get_field("webhook_url").max_length or 200


def partner_subject_ensure(*, partner: Partner, user: User) -> PartnerSubject:
    """The partner's pairwise id for this consumer, created the first time the partner receives them."""
    subject, _created = PartnerSubject.objects.get_or_create(partner=partner, user=user)
    return subject


def webhook_secret_overlap() -> timedelta:
    """How long the previous signing secret still signs deliveries after a rotation."""
    return timedelta(hours=settings.WEBHOOK_SECRET_OVERLAP_HOURS)


@transaction.atomic
def partner_webhook_secret_rotate(*, partner: Partner, actor: Actor) -> Partner:
    """Give the partner a new webhook signing secret; the current one stays valid for the overlap.

    Deliveries are signed with both until ``WEBHOOK_SECRET_OVERLAP_HOURS`` have passed, so the
    partner can switch over without missing a webhook. The audit log records fingerprints, never a
    secret.
    """
    partner = Partner.objects.select_for_update().get(pk=partner.pk)
    partner.webhook_secret_previous = partner.webhook_secret
    partner.webhook_secret = webhook_secret_generate()
    partner.webhook_secret_previous_expires_at = timezone.now() + webhook_secret_overlap()
    partner.save(update_fields=["webhook_secret", "webhook_secret_previous", "webhook_secret_previous_expires_at"])
    event_record(
        actor=actor,
        subject=None,
        action=AuditAction.PARTNER_WEBHOOK_SECRET_ROTATED,
        target=partner,
        data={
            "partner": partner.slug,
            "fingerprint": secret_fingerprint(partner.webhook_secret),
            "previous_fingerprint": secret_fingerprint(partner.webhook_secret_previous),
            "previous_expires_at": partner.webhook_secret_previous_expires_at.isoformat(),
        },
    )
    return partner


def webhook_url_validate(url: str) -> None:
    """Refuse a webhook URL that is malformed or that deliveries could not be sent to (SSRF guard).

    The one check behind the admin's partner form, the partner API and ``partner_webhook_url_change``.
    An empty URL is valid: the partner then reads the event feed only.
    """
    if not url:
        return
    URLValidator(message=_("Enter a valid URL."))(url)
    if len(url) > WEBHOOK_URL_MAX_LENGTH:
        raise ValidationError(
            _("The URL is longer than %(max)d characters."), code="max_length", params={"max": WEBHOOK_URL_MAX_LENGTH}
        )
    # The same guard that every delivery passes, so a refused endpoint is known now.
    if reason := webhook_url_refusal(url):
        raise ValidationError(
            _("Webhooks cannot be sent to this URL: %(reason)s."),
            code="webhook_url_refused",
            params={"reason": reason},
        )


@transaction.atomic
def partner_webhook_url_change(*, partner: Partner, url: str, actor: Actor) -> Partner:
    """Point the partner's webhooks at ``url`` (empty: feed only), validated by ``webhook_url_validate``.

    The change is audited (the new URL's origin only: a path or query may carry the partner's own
    token) and kept in the partner's history. Events already waiting go to the new URL on their
    next attempt. A webhook disabled after a 410 stays disabled until staff re-enable it.
    """
    webhook_url_validate(url)
    partner = Partner.objects.select_for_update().get(pk=partner.pk)
    if partner.webhook_url == url:
        return partner
    partner.webhook_url = url
    # simple-history keeps the reason beside the new URL; 100 characters is its column's size.
    partner._change_reason = f"webhook URL changed by {actor.kind} {actor.label or actor.id}"[:100]  # type: ignore[attr-defined]
    partner.save(update_fields=["webhook_url"])
    parts = urlsplit(url)
    event_record(
        actor=actor,
        subject=None,
        action=AuditAction.PARTNER_WEBHOOK_URL_CHANGED,
        target=partner,
        data={"partner": partner.slug, "origin": f"{parts.scheme}://{parts.netloc}" if url else ""},
    )
    return partner


def secret_fingerprint(secret: str) -> str:
    """A short, non-reversible name for a secret, safe to log and to show."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def _credential_audit(*, credential: PartnerCredential, action: AuditAction, actor: Actor) -> None:
    event_record(
        actor=actor,
        subject=None,
        action=action,
        target=credential,
        data={
            "partner": credential.partner.slug,
            "client_id": credential.application.client_id,
            "label": credential.label,
            "scopes": credential.scopes,
        },
    )


def _credential_tokens_delete(credential: PartnerCredential) -> None:
    RefreshToken.objects.filter(application_id=credential.application_id).delete()
    AccessToken.objects.filter(application_id=credential.application_id).delete()


@transaction.atomic
def partner_credential_create(
    *, partner: Partner, label: str, scopes: Iterable[str], actor: Actor, created_by: User | None = None
) -> tuple[PartnerCredential, str]:
    """A new OAuth client (client-credentials grant) for the partner.

    Returns the credential and its client secret in clear; only a hash is stored, so this is the
    one chance to show it.
    """
    scope_list = [scope for scope in PARTNER_SCOPES if scope in set(scopes)]
    if not scope_list:
        raise DomainError(str(_("Choose at least one scope.")), code="scopes_required")
    secret = generate_client_secret()
    application = Application.objects.create(
        name=f"{partner.name} · {label}"[:255],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
        hash_client_secret=True,
        skip_authorization=True,
    )
    credential = PartnerCredential.objects.create(
        partner=partner, application=application, label=label, scopes=" ".join(scope_list), created_by=created_by
    )
    _credential_audit(credential=credential, action=AuditAction.PARTNER_CREDENTIAL_CREATED, actor=actor)
    return credential, secret


@transaction.atomic
def partner_credential_rotate(*, credential: PartnerCredential, actor: Actor) -> str:
    """Replace the client secret and end the credential's current tokens; returns the new secret in clear.

    The old secret stops working at once. To switch without an outage, create a second
    credential, move the partner to it, then revoke the first.
    """
    credential = (
        PartnerCredential.objects.select_for_update().select_related("partner", "application").get(pk=credential.pk)
    )
    if not credential.is_active:
        raise DomainError(str(_("A revoked credential cannot be rotated.")), code="credential_revoked")
    secret = generate_client_secret()
    application = credential.application
    application.client_secret = secret
    application.save(update_fields=["client_secret", "updated"])
    _credential_tokens_delete(credential)
    credential.rotated_at = timezone.now()
    credential.save(update_fields=["rotated_at"])
    _credential_audit(credential=credential, action=AuditAction.PARTNER_CREDENTIAL_ROTATED, actor=actor)
    return secret


@transaction.atomic
def partner_credential_revoke(*, credential: PartnerCredential, actor: Actor) -> PartnerCredential:
    """Withdraw a credential for good: its tokens stop working at once and no new ones are issued."""
    credential = (
        PartnerCredential.objects.select_for_update().select_related("partner", "application").get(pk=credential.pk)
    )
    if not credential.is_active:
        return credential
    # Nobody ever learns this secret: the client can no longer authenticate even if the
    # revocation check were bypassed.
    application = credential.application
    application.client_secret = generate_client_secret()
    application.save(update_fields=["client_secret", "updated"])
    _credential_tokens_delete(credential)
    credential.revoked_at = timezone.now()
    credential.save(update_fields=["revoked_at"])
    _credential_audit(credential=credential, action=AuditAction.PARTNER_CREDENTIAL_REVOKED, actor=actor)
    return credential


def _partner_status_set(*, partner: Partner, status: PartnerStatus, reason: str, actor: Actor) -> Partner:
    reason = reason.strip()
    if not reason:
        raise DomainError(str(_("Give the reason.")), code="reason_required")
    partner = Partner.objects.select_for_update().get(pk=partner.pk)
    if partner.status == status:
        return partner
    partner.status = status
    partner.save(update_fields=["status"])
    action = AuditAction.PARTNER_SUSPENDED if status == PartnerStatus.SUSPENDED else AuditAction.PARTNER_RESUMED
    # The reason is free text a staff member typed: a note beside the sealed row, as elsewhere.
    event_record(actor=actor, subject=None, action=action, target=partner, data={"partner": partner.slug}, note=reason)
    return partner


@transaction.atomic
def partner_suspend(*, partner: Partner, reason: str, actor: Actor) -> Partner:
    """Suspend a partner: its credentials stop working at the next request (the API checks the status).

    The reason is required and kept with the audit event. Suspending a suspended partner changes nothing.
    """
    return _partner_status_set(partner=partner, status=PartnerStatus.SUSPENDED, reason=reason, actor=actor)


@transaction.atomic
def partner_resume(*, partner: Partner, reason: str, actor: Actor) -> Partner:
    """Reinstate a suspended partner, with the reason kept in the audit log; an active partner is left as it is."""
    return _partner_status_set(partner=partner, status=PartnerStatus.ACTIVE, reason=reason, actor=actor)
