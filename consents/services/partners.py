"""Partner credentials for the API, the event feed's sequencer and partners' acknowledgements."""

import uuid
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import AccessToken, Application, RefreshToken

from audit.services import Actor, event_record
from consents.models import (
    PARTNER_SCOPES,
    FeedSequencer,
    OutboxEvent,
    Partner,
    PartnerCredential,
)
from consents.models.outbox import AckStatus
from consents.services.consent import ConsentError
from portal.models import User


def _credential_audit(*, credential: PartnerCredential, action: str, actor: Actor) -> None:
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
        raise ConsentError(str(_("Choose at least one scope.")), code="scopes_required")
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
    _credential_audit(credential=credential, action="partner.credential_created", actor=actor)
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
        raise ConsentError(str(_("A revoked credential cannot be rotated.")), code="credential_revoked")
    secret = generate_client_secret()
    application = credential.application
    application.client_secret = secret
    application.save(update_fields=["client_secret", "updated"])
    _credential_tokens_delete(credential)
    credential.rotated_at = timezone.now()
    credential.save(update_fields=["rotated_at"])
    _credential_audit(credential=credential, action="partner.credential_rotated", actor=actor)
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
    _credential_audit(credential=credential, action="partner.credential_revoked", actor=actor)
    return credential


FEED_SEQUENCE_BATCH = 5_000


def outbox_feed_sequence() -> int:
    """Give committed outbox events without a feed position the next positions, oldest first.

    Runs under a lock on the sequencer row, so positions are handed out by one writer at a time
    and only to events whose transactions have committed: an event that commits late gets a
    later position instead of slipping behind a cursor that has already moved on. Returns the
    number of events sequenced. The check for work comes first and outside the transaction, so
    a feed read with nothing new does not take the write lock (on SQLite, the whole database's).
    """
    if not OutboxEvent.objects.filter(feed_seq__isnull=True).exists():
        return 0
    return _outbox_feed_sequence_locked()


@transaction.atomic
def _outbox_feed_sequence_locked() -> int:
    sequencer, _created = FeedSequencer.objects.select_for_update().get_or_create(id=FeedSequencer.SINGLETON_ID)
    pending = list(
        OutboxEvent.objects.filter(feed_seq__isnull=True).order_by("created_at", "id").only("id")[:FEED_SEQUENCE_BATCH]
    )
    for event in pending:
        sequencer.last_seq += 1
        event.feed_seq = sequencer.last_seq
    OutboxEvent.objects.bulk_update(pending, ["feed_seq"], batch_size=500)
    sequencer.save(update_fields=["last_seq"])
    return len(pending)


class EventAckConflict(ConsentError):
    """The event was already acknowledged as processed; a different answer cannot replace that."""


@transaction.atomic
def outbox_event_ack(*, partner: Partner, event_id: uuid.UUID | str, status: str, detail: str) -> OutboxEvent:
    """Record the partner's acknowledgement of one of its events.

    Repeating the same acknowledgement changes nothing. ``failed`` may later become
    ``processed`` (the partner retried and succeeded); ``processed`` is final, and anything else
    after it raises ``EventAckConflict``. Another partner's event is ``OutboxEvent.DoesNotExist``.
    """
    event = OutboxEvent.objects.select_for_update().select_related("subject__user").get(partner=partner, pk=event_id)
    if event.ack_status == status:
        return event
    if event.ack_status == AckStatus.PROCESSED:
        raise EventAckConflict(str(_("This event was already acknowledged as processed.")), code="already_acknowledged")
    event.ack_status = status
    event.ack_detail = detail.strip()[:1000]
    event.acked_at = timezone.now()
    event.save(update_fields=["ack_status", "ack_detail", "acked_at"])
    event_record(
        actor=Actor.partner(partner),
        subject=event.subject.user,
        action="partner.event_acknowledged",
        target=event,
        data={"event_id": str(event.pk), "type": event.event_type, "status": status},
        # The partner's own words may name the person: beside the sealed row, erasable on deletion.
        note=event.ack_detail,
    )
    return event
