"""What the operations dashboard and the regulator reports need from the demo: a few consumers' past requests,
their consent decisions, and a partner's acknowledgement of a withdrawal.

The requests are stored as they would stand after being worked (received last year or in recent
weeks, completed on time or late, one denied), so the CCPA page opens on a year with figures and
the dashboard's request chart is not empty. Consent decisions and the acknowledgement go through
the services, so they are audited and sent to partners like any other.
"""

from datetime import datetime, timedelta

from django.utils import timezone

from audit.services import Actor
from consents.models import EventType, OutboxEvent, Purpose
from consents.models.outbox import AckStatus
from consents.services.consents import consent_grant, consent_revoke
from consents.services.feed import outbox_event_ack
from portal.models import Jurisdiction, User
from privacy_requests.deadlines import due_at_compute
from privacy_requests.models import PrivacyRequest, RequestKind, RequestStatus
from privacy_requests.reports.periods import day_start, local_today

# (email, jurisdiction, purposes given, purposes then withdrawn)
DEMO_HISTORY_CONSUMERS = [
    (
        "casey@example.com",
        Jurisdiction.CCPA,
        ("personalised-offers", "advertising-partners"),
        ("advertising-partners",),
    ),
    ("jun@example.com", Jurisdiction.GDPR, ("product-analytics", "personalised-offers"), ("personalised-offers",)),
    ("ola@example.com", Jurisdiction.GDPR, ("research-with-affiliates",), ()),
]
# (consumer, kind, received this many days before 1 January, status, days taken), each answered in that
# year; then the same in recent weeks (days ago), answered by now.
LAST_YEAR = [
    ("casey@example.com", RequestKind.EXPORT, 120, RequestStatus.COMPLETED, 52),
    ("casey@example.com", RequestKind.EXPORT, 40, RequestStatus.COMPLETED, 6),
    ("casey@example.com", RequestKind.DELETION, 75, RequestStatus.REJECTED, 9),
    ("jun@example.com", RequestKind.EXPORT, 200, RequestStatus.COMPLETED, 3),
]
RECENT = [
    ("jun@example.com", RequestKind.EXPORT, 30, RequestStatus.COMPLETED, 4),
    ("ola@example.com", RequestKind.EXPORT, 20, RequestStatus.COMPLETED, 12),
    ("casey@example.com", RequestKind.EXPORT, 2, RequestStatus.PROCESSING, 0),
]


def _request_create(user: User, kind: str, received_at: datetime, status: str, days: int) -> None:
    answered_at = received_at + timedelta(days=days)
    PrivacyRequest.objects.create(
        user=user,
        kind=kind,
        status=status,
        jurisdiction=user.jurisdiction,
        created_at=received_at,
        updated_at=answered_at if status != RequestStatus.PROCESSING else received_at,
        due_at=due_at_compute(received_at=received_at, jurisdiction=user.jurisdiction),
        completed_at=answered_at if status == RequestStatus.COMPLETED else None,
        rejected_at=answered_at if status == RequestStatus.REJECTED else None,
        rejection_reason="The requester could not be verified." if status == RequestStatus.REJECTED else "",
        progress=100 if status == RequestStatus.COMPLETED else 0,
        grace_ends_at=received_at + timedelta(days=7) if kind == RequestKind.DELETION else None,
    )


def operations_history_ensure() -> None:
    """Three more consumers with consent decisions and privacy requests, and one acknowledged withdrawal."""
    new_year = day_start(local_today().replace(month=1, day=1))
    now = timezone.now()
    consumers = {}
    for email, jurisdiction, given, withdrawn in DEMO_HISTORY_CONSUMERS:
        user, created = User.objects.get_or_create(email=email, defaults={"jurisdiction": jurisdiction})
        consumers[email] = user
        if not created:
            continue
        user.set_unusable_password()
        user.save(update_fields=["password"])
        me = Actor.consumer(user)
        for slug in given:
            consent_grant(user=user, purpose=Purpose.objects.get(slug=slug), actor=me)
        for slug in withdrawn:
            consent_revoke(user=user, purpose=Purpose.objects.get(slug=slug), actor=me)
    # The requests are placed once, relative to the day of the first seeding.
    if not PrivacyRequest.objects.filter(user__in=consumers.values()).exists():
        for email, kind, days_before, status, days in LAST_YEAR:
            _request_create(consumers[email], kind, new_year - timedelta(days=days_before, hours=-10), status, days)
        for email, kind, days_ago, status, days in RECENT:
            _request_create(consumers[email], kind, now - timedelta(days=days_ago), status, days)
    # One partner confirms the first withdrawal it was sent; the others' stay unacknowledged.
    first = (
        OutboxEvent.objects.filter(event_type=EventType.CONSENT_REVOKED, subject__user__in=consumers.values())
        .select_related("partner")
        .order_by("created_at")
        .first()
    )
    if first is not None and first.acked_at is None:
        outbox_event_ack(partner=first.partner, event_id=first.pk, status=AckStatus.PROCESSED, detail="Removed")
