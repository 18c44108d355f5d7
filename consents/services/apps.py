"""State changes of connected apps' grants: ending one (by the consumer, the partner, expiry or account deletion)."""

import uuid

from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, RefreshToken

from audit.actions import AuditAction
from audit.services import Actor, event_record, subject_lock
from consents.models import AppGrant, ConsentStatus, EventType, ReceiptEvent, RevocationReason
from consents.receipts import app_grant_receipt_issue
from consents.services.outbox import outbox_app_grant_changed

ENDED = (ConsentStatus.REVOKED, ConsentStatus.EXPIRED)


def _tokens_delete(grant: AppGrant) -> int:
    """Delete every code and token issued under the grant; their links go with them (cascade)."""
    links = list(grant.token_links.values_list("code_id", "access_token_id", "refresh_token_id"))
    codes = {code for code, _access, _refresh in links if code is not None}
    access = {token for _code, token, _refresh in links if token is not None}
    refresh = {token for _code, _access, token in links if token is not None}
    # Refresh tokens first: each points at its access token, and a refresh token that outlived its
    # access token could otherwise be exchanged for a new one until the delete below.
    deleted = RefreshToken.objects.filter(pk__in=refresh).delete()[0]
    deleted += AccessToken.objects.filter(pk__in=access).delete()[0]
    deleted += Grant.objects.filter(pk__in=codes).delete()[0]
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
