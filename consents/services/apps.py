"""Connected apps: registering a partner's app, its pushed requests, and the grants consumers give and end.

The app's django-oauth-toolkit ``Application`` is created and kept in step here (confidential,
authorisation-code grant, the app's exact redirect URIs); staff never edit it directly. A
consumer's approval creates an ``AppGrant`` and a short-lived authorisation code linked to it; ending a
grant (consumer, partner, expiry or account deletion) deletes every code and token issued under it.
"""

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken
from oauth2_provider.settings import oauth2_settings
from oauthlib.common import generate_token

from audit.actions import AuditAction
from audit.services import Actor, event_record, subject_lock
from consents.authorization_details import RequestedAccess, details_granted
from consents.errors import DomainError
from consents.models import (
    AppGrant,
    AppGrantToken,
    ConnectedApp,
    ConsentStatus,
    DataCategory,
    EventType,
    Initiator,
    Partner,
    Purpose,
    PushedAuthorization,
    ReceiptEvent,
    RevocationReason,
)
from consents.receipts import app_grant_receipt_issue
from consents.services.outbox import outbox_app_grant_changed
from consents.services.partners import partner_subject_ensure
from portal.models import User

# The scope every app token carries: it names no partner-API scope, so an app's token can never
# call the partner API; what it may read is its grant's authorization_details.
APP_TOKEN_SCOPE = "grant"  # noqa: S105 (a scope name)
ENDED = (ConsentStatus.REVOKED, ConsentStatus.EXPIRED)
# Seconds after a grant's code expired before the grant is ended as unfinished: a token request
# already under way when the code was about to expire has finished by then.
UNFINISHED_GRACE = 300


def redirect_uris_clean(uris: Iterable[str]) -> list[str]:
    """Absolute URIs without fragments, in an allowed scheme (https outside development and tests)."""
    cleaned = []
    allowed = oauth2_settings.ALLOWED_REDIRECT_URI_SCHEMES
    for uri in (u.strip() for u in uris):
        if not uri:
            continue
        parts = urlsplit(uri)
        if parts.scheme not in allowed or not parts.netloc or parts.fragment or "#" in uri:
            raise DomainError(
                str(_("“%(uri)s” is not an absolute %(schemes)s URI without a fragment."))
                % {"uri": uri, "schemes": " / ".join(allowed)},
                code="redirect_uri_invalid",
            )
        if uri not in cleaned:
            cleaned.append(uri)
    if not cleaned:
        raise DomainError(str(_("Give at least one redirect URI.")), code="redirect_uri_required")
    return cleaned


def _app_audit(*, app: ConnectedApp, action: AuditAction, actor: Actor) -> None:
    # An app is an OAuth client of the partner like a credential; the target tells them apart.
    event_record(
        actor=actor,
        subject=None,
        action=action,
        target=app,
        data={"partner": app.partner.slug, "client_id": app.application.client_id, "app": app.name},
    )


@transaction.atomic
def connected_app_create(
    *,
    partner: Partner,
    name: str,
    redirect_uris: Iterable[str],
    purposes: Iterable[Purpose],
    data_categories: Iterable[DataCategory],
    max_duration_days: int | None,
    max_lookback_days: int | None,
    actor: Actor,
    created_by: User | None = None,
) -> tuple[ConnectedApp, str]:
    """Register an app and its OAuth client; returns the app and the client secret in clear (shown once)."""
    uris = redirect_uris_clean(redirect_uris)
    secret = generate_client_secret()
    application = Application.objects.create(
        name=f"{partner.name} · {name}"[:255],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(uris),
        client_secret=secret,
        hash_client_secret=True,
        skip_authorization=False,
    )
    app = ConnectedApp.objects.create(
        partner=partner,
        application=application,
        name=name,
        redirect_uris="\n".join(uris),
        max_duration_days=max_duration_days,
        max_lookback_days=max_lookback_days,
        created_by=created_by,
    )
    app.purposes.set(purposes)
    app.data_categories.set(data_categories)
    _app_audit(app=app, action=AuditAction.PARTNER_CREDENTIAL_CREATED, actor=actor)
    return app, secret


@transaction.atomic
def connected_app_update(*, app: ConnectedApp, actor: Actor) -> ConnectedApp:
    """Save a registration staff edited and keep its OAuth client's redirect URIs in step."""
    uris = redirect_uris_clean(app.redirect_uri_list)
    app.redirect_uris = "\n".join(uris)
    app.save()
    application = app.application
    application.name = f"{app.partner.name} · {app.name}"[:255]
    application.redirect_uris = " ".join(uris)
    application.save(update_fields=["name", "redirect_uris", "updated"])
    return app


@transaction.atomic
def connected_app_rotate_secret(*, app: ConnectedApp, actor: Actor) -> str:
    """Replace the app's client secret; returns the new one in clear.

    Consumers' grants and their tokens stay: the secret authenticates the app, not the consumer,
    and ending every grant would make every consumer connect again.
    """
    app = ConnectedApp.objects.select_for_update().select_related("partner", "application").get(pk=app.pk)
    if app.disabled_at is not None:
        raise DomainError(str(_("A disabled app cannot be given a new secret.")), code="app_disabled")
    secret = generate_client_secret()
    app.application.client_secret = secret
    app.application.save(update_fields=["client_secret", "updated"])
    _app_audit(app=app, action=AuditAction.PARTNER_CREDENTIAL_ROTATED, actor=actor)
    return secret


@transaction.atomic
def connected_app_disable(*, app: ConnectedApp, actor: Actor) -> ConnectedApp:
    """Stop an app for good: its secret is replaced by one nobody knows and its tokens stop working."""
    app = ConnectedApp.objects.select_for_update().select_related("partner", "application").get(pk=app.pk)
    if app.disabled_at is not None:
        return app
    app.application.client_secret = generate_client_secret()
    app.application.save(update_fields=["client_secret", "updated"])
    RefreshToken.objects.filter(application_id=app.application_id).delete()
    AccessToken.objects.filter(application_id=app.application_id).delete()
    Grant.objects.filter(application_id=app.application_id).delete()
    app.disabled_at = timezone.now()
    app.save(update_fields=["disabled_at"])
    _app_audit(app=app, action=AuditAction.PARTNER_CREDENTIAL_REVOKED, actor=actor)
    return app


def pushed_authorization_create(*, app: ConnectedApp, parameters: dict) -> PushedAuthorization:
    """Store a validated pushed request (RFC 9126) for the consumer's browser to bring back once."""
    now = timezone.now()
    return PushedAuthorization.objects.create(
        app=app,
        parameters=parameters,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.CONNECT_REQUEST_URI_SECONDS),
    )


@transaction.atomic
def app_grant_create(
    *,
    pushed: PushedAuthorization,
    access: RequestedAccess,
    user: User,
    categories: Iterable[DataCategory],
    duration_type: str,
    expires_at: datetime | None,
    period_days: int | None,
) -> tuple[AppGrant, str]:
    """Record what the consumer approved and issue the authorisation code for it.

    The pushed request is used up here (a second approval of the same request_uri fails); the
    code is single use and lives ``AUTHORIZATION_CODE_EXPIRE_SECONDS``. Returns the grant and the
    code to send back to the app.
    """
    locked = PushedAuthorization.objects.select_for_update().select_related("app__application").get(pk=pushed.pk)
    now = timezone.now()
    if not locked.is_usable(now):
        raise DomainError(str(_("This request has already been used or has expired.")), code="request_used")
    locked.used_at = now
    locked.save(update_fields=["used_at"])

    granted = list(categories)
    app = locked.app
    # Connecting again replaces the running connection for this purpose (its tokens end with it):
    # one connection per app and purpose, the one the consumer approved last.
    previous = AppGrant.objects.filter(user=user, app=app, purpose=access.purpose, status=ConsentStatus.GRANTED)
    for old in previous:
        app_grant_revoke(old, initiator=Actor.consumer(user), reason=RevocationReason.REPLACED)
    version = access.purpose.current_version
    assert version is not None  # details_validate only lets published purposes through
    grant = AppGrant.objects.create(
        app=app,
        user=user,
        purpose=access.purpose,
        version=version,
        status=ConsentStatus.GRANTED,
        duration_type=duration_type,
        expires_at=expires_at,
        lookback_days=access.lookback_days,
        authorization_details=details_granted(access, granted, duration_type, period_days),
        granted_at=now,
        changed_by=Initiator.CONSUMER,
        updated_at=now,
    )
    grant.data_categories.set(granted)
    partner_subject_ensure(partner=app.partner, user=user)
    code = generate_token()
    parameters = locked.parameters
    dot_grant = Grant.objects.create(
        application=app.application,
        user=user,
        code=code,
        expires=now + timedelta(seconds=oauth2_settings.AUTHORIZATION_CODE_EXPIRE_SECONDS),
        redirect_uri=parameters["redirect_uri"],
        scope=APP_TOKEN_SCOPE,
        code_challenge=parameters["code_challenge"],
        code_challenge_method=parameters["code_challenge_method"],
    )
    AppGrantToken.objects.create(grant=grant, code=dot_grant, created_at=now)
    # Like any consent: a signed receipt for the consumer, an audit event and the partner told.
    receipt = app_grant_receipt_issue(grant=grant, event=ReceiptEvent.GRANTED)
    event_record(
        actor=Actor.consumer(user),
        subject=user,
        action=AuditAction.CONSENT_GRANTED,
        target=grant,
        data={
            "purpose": access.purpose.slug,
            "app_grant": str(grant.id),
            "app": app.name,
            "partner": app.partner.slug,
            "version": version.number,
            "data_categories": sorted(c.slug for c in granted),
            "duration_type": duration_type,
            "expires_at": expires_at,
            "receipt": str(receipt.id),
            "receipt_sha256": receipt.sha256,
        },
    )
    outbox_app_grant_changed(grant=grant, event_type=EventType.CONSENT_GRANTED)
    return grant, code


def one_time_expiry() -> datetime:
    """When one-time access ends: the same window as a one-time consent."""
    return timezone.now() + timedelta(hours=settings.ONE_TIME_CONSENT_HOURS)


@transaction.atomic
def app_grant_code_replayed(*, grant: AppGrant) -> None:
    """A used code came back: revoke every token issued under its grant (RFC 6749 section 4.1.2).

    The grant itself stays: the consumer's decision was not compromised, only this app's tokens;
    the app connects again to get new ones.
    """
    # The used code stays (expired) so that a further replay is recognised too.
    _tokens_delete(grant, codes=False)


def app_grant_is_live(grant: AppGrant) -> bool:
    """Whether tokens of this grant may be used now: the grant is active and its app and partner too."""
    return grant.is_active and grant.app.is_active


@transaction.atomic
def pushed_authorization_deny(*, pushed: PushedAuthorization) -> None:
    """The consumer said no: the request is used up, nothing is granted."""
    PushedAuthorization.objects.filter(pk=pushed.pk, used_at__isnull=True).update(used_at=timezone.now())


def _tokens_delete(grant: AppGrant, *, codes: bool = True) -> int:
    """Delete every token (and, with ``codes``, code) issued under the grant; their links go too (cascade)."""
    links = list(grant.token_links.values_list("code_id", "access_token_id", "refresh_token_id"))
    code_ids = {code for code, _access, _refresh in links if code is not None} if codes else set()
    access = {token for _code, token, _refresh in links if token is not None}
    refresh = {token for _code, _access, token in links if token is not None}
    # Refresh tokens first: each points at its access token, and a refresh token that outlived its
    # access token could otherwise be exchanged for a new one until the delete below.
    deleted = RefreshToken.objects.filter(pk__in=refresh).delete()[0]
    deleted += AccessToken.objects.filter(pk__in=access).delete()[0]
    deleted += Grant.objects.filter(pk__in=code_ids).delete()[0]
    return deleted


@transaction.atomic
def app_grant_revoke(grant: AppGrant, *, initiator: Actor, reason: str, note: str = "") -> AppGrant:
    """End a connected app's grant: it stops covering access at once and every token it issued is revoked.

    ``reason`` ``expired`` ends it as expired, any other as withdrawn. In the same transaction:
    the grant's codes and tokens are deleted, a signed receipt is issued, the audit log records
    it and the app's partner gets a ``consent.revoked`` (or ``consent.expired``) event naming the
    grant. Ending a grant that already ended changes nothing.
    """
    subject_lock(grant.user)
    grant = (
        AppGrant.objects.select_for_update(of=("self",))
        .select_related("app__partner", "purpose", "version", "user")
        .get(pk=grant.pk)
    )
    if grant.status in ENDED:
        return grant
    expired = reason == RevocationReason.EXPIRED
    now = timezone.now()
    grant.status = ConsentStatus.EXPIRED if expired else ConsentStatus.REVOKED
    grant.revoked_at = now
    grant.revocation_reason = reason
    grant.revocation_note = note.strip()[:500]
    grant.changed_by = initiator.kind
    grant.updated_at = now
    grant.save(
        update_fields=["status", "revoked_at", "revocation_reason", "revocation_note", "changed_by", "updated_at"]
    )
    tokens = _tokens_delete(grant)
    event = ReceiptEvent.EXPIRED if expired else ReceiptEvent.REVOKED
    receipt = app_grant_receipt_issue(grant=grant, event=event)
    event_record(
        actor=initiator,
        subject=grant.user,
        action=AuditAction(f"consent.{event}"),
        target=grant,
        data={
            "purpose": grant.purpose.slug,
            "app_grant": str(grant.pk),
            "app": grant.app.name,
            "partner": grant.app.partner.slug,
            "status": grant.status,
            "reason": reason,
            "tokens_revoked": tokens,
            "receipt": str(receipt.id),
            "receipt_sha256": receipt.sha256,
        },
        # The partner's or consumer's own words may name the person: beside the sealed row, erasable.
        note=grant.revocation_note,
    )
    outbox_app_grant_changed(grant=grant, event_type=EventType(f"consent.{event}"))
    return grant


def app_grant_unfinished_end(*, grant_id: uuid.UUID | str) -> AppGrant | None:
    """End a grant whose app never exchanged its code (the code has expired); ``None`` if not such a grant.

    The consumer approved, so the grant was recorded and the partner told; without tokens it
    never covered anything, and ending it keeps "Connected apps" to connections that exist.
    """
    grant = AppGrant.objects.select_related("user").filter(pk=grant_id).first()
    if grant is None or grant.status != ConsentStatus.GRANTED or grant.connected_at is not None:
        return None
    if grant.granted_at > unfinished_before():
        return None
    with transaction.atomic():
        ended = app_grant_revoke(grant, initiator=Actor.system("connect"), reason=RevocationReason.INCOMPLETE)
    return ended if ended.revocation_reason == RevocationReason.INCOMPLETE else None


def unfinished_before() -> datetime:
    """Grants approved before this and still without tokens will never get any: their code expired."""
    return timezone.now() - timedelta(seconds=oauth2_settings.AUTHORIZATION_CODE_EXPIRE_SECONDS + UNFINISHED_GRACE)


def app_grant_expire(*, grant_id: uuid.UUID | str) -> AppGrant | None:
    """Expire one grant whose time has come; ``None`` (and nothing changed) if it is not due or already ended."""
    grant = AppGrant.objects.select_related("user").filter(pk=grant_id).first()
    if grant is None or grant.status != ConsentStatus.GRANTED or grant.expires_at is None:
        return None
    if grant.expires_at > timezone.now():
        return None
    with transaction.atomic():
        ended = app_grant_revoke(grant, initiator=Actor.system("expiry"), reason=RevocationReason.EXPIRED)
    return ended if ended.revocation_reason == RevocationReason.EXPIRED else None
