"""What a deletion may keep for a while, and when it goes: the free text others wrote about the
consumer, and the address the completion email goes to.

Partners' acknowledgements and staff notes may name the person. They are useful while a deletion
is open (why did a partner fail?), so they are erased when the account is scrubbed, again when
the deletion completes, when the contact retention ends (``PRIVACY_REQUEST_CONTACT_RETENTION_DAYS``)
and whenever a partner writes about an account whose deletion has completed.
"""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import AuditNote
from audit.services import Actor, audit_notes_scrub, event_record
from consents.models import OutboxEvent
from portal.models import User
from privacy_requests.models import (
    PrivacyRequest,
    PrivacyRequestExtension,
    PrivacyRequestPartnerTask,
    RequestKind,
    RequestStatus,
)


def free_text_scrub(*, user: User, now: datetime) -> int:
    """Erase what partners and staff wrote about the consumer; the facts (who, what, when) stay.

    Partners' acknowledgements (on the outbox events, the erasure tasks and beside the sealed
    audit rows), staff notes on erasure tasks and the reasons of deadline extensions, history rows
    included. Runs when the account is scrubbed, again when the deletion completes (partners
    answer afterwards) and when the contact retention ends, so it must be cheap to repeat.
    """
    request_ids = PrivacyRequest.objects.filter(user=user).values("pk")
    task_text = ~Q(ack_detail="") | ~Q(staff_note="")
    scrubbed = OutboxEvent.objects.filter(subject__user=user).exclude(ack_detail="").update(ack_detail="")
    scrubbed += PrivacyRequestPartnerTask.objects.filter(task_text, request__in=request_ids).update(
        ack_detail="", staff_note="", text_removed_at=now
    )
    PrivacyRequestPartnerTask.history.filter(task_text, request_id__in=request_ids).update(
        ack_detail="", staff_note="", text_removed_at=now
    )
    scrubbed += (
        PrivacyRequestExtension.objects.filter(request__in=request_ids)
        .exclude(reason="")
        .update(reason="", text_removed_at=now)
    )
    PrivacyRequestExtension.history.filter(request_id__in=request_ids).exclude(reason="").update(
        reason="", text_removed_at=now
    )
    return scrubbed + audit_notes_scrub(subject=user)


@transaction.atomic
def privacy_request_retention_apply(*, request_id: Any) -> bool:
    """A deletion still waiting for partners after ``PRIVACY_REQUEST_CONTACT_RETENTION_DAYS``: forget the
    consumer's address and erase the free text gathered so far. ``False`` when there was nothing to do.

    The request stays open for the partners that have not confirmed; its completion then emails
    nobody. Repeated on every tick, as confirmations that arrive later bring new free text.
    """
    request = PrivacyRequest.objects.select_for_update().select_related("user").filter(pk=request_id).first()
    now = timezone.now()
    if (
        request is None
        or request.kind != RequestKind.DELETION
        or request.status != RequestStatus.WAITING_PARTNERS
        or request.created_at + timedelta(days=settings.PRIVACY_REQUEST_CONTACT_RETENTION_DAYS) > now
    ):
        return False
    forgotten = bool(request.contact_email)
    scrubbed = free_text_scrub(user=request.user, now=now)
    if not forgotten and not scrubbed:
        return False
    if forgotten:
        request.contact_email = ""
        request.save(update_fields=["contact_email"])
    event_record(
        actor=Actor.system("retention"),
        subject=request.user,
        action=AuditAction.PRIVACY_REQUEST_RETENTION_APPLIED,
        target=request,
        data={
            "contact_email_forgotten": forgotten,
            "free_text_scrubbed": scrubbed,
            "retention_days": settings.PRIVACY_REQUEST_CONTACT_RETENTION_DAYS,
        },
    )
    return True


def late_free_text_scrub() -> int:
    """Erase what partners wrote about accounts whose deletion has completed; returns how many accounts.

    A partner can still acknowledge an event about a deleted account afterwards (the revocations
    the deletion sent, or an erasure staff already recorded); its words go at the next tick.
    """
    deleted = PrivacyRequest.objects.filter(kind=RequestKind.DELETION, status=RequestStatus.COMPLETED).values("user_id")
    late = set(
        AuditNote.objects.filter(scrubbed_at__isnull=True, event__subject_id__in=deleted).values_list(
            "event__subject_id", flat=True
        )
    )
    late |= set(
        OutboxEvent.objects.filter(subject__user_id__in=deleted)
        .exclude(ack_detail="")
        .values_list("subject__user_id", flat=True)
    )
    for user in User.objects.filter(pk__in=late):
        with transaction.atomic():
            scrubbed = free_text_scrub(user=user, now=timezone.now())
            event_record(
                actor=Actor.system("account deletion"),
                subject=user,
                action=AuditAction.ACCOUNT_FREE_TEXT_SCRUBBED,
                data={"free_text_scrubbed": scrubbed},
            )
    return len(late)
