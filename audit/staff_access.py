"""Justified staff access: the reason a staff member states before opening one consumer's records.

A reason (a code and a reference) covers one consumer for ``STAFF_ACCESS_REASON_MINUTES``; each
opening in that time is recorded as an access event carrying it (``audit.access``), which the consumer
reads. Privacy requests belong to an app built on top of this one: they are read here by name through
the app registry, as the access log's foreign keys name consents' models, never imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.access import STAFF_PARTNER_SLUG
from audit.models import AccessEvent, StaffAccessReason, StaffAccessReasonCode

if TYPE_CHECKING:
    from portal.models import User

# A ticket number as support desks write them: "#4821", "4821", "SUP-4821", "2026/LR/17".
TICKET_REFERENCE = re.compile(r"#?[A-Za-z0-9][A-Za-z0-9/_.-]*")
# A privacy request's id, whole or its first 8 hex digits as the admin queue shows it.
_REQUEST_REFERENCE = re.compile(r"#?([0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){0,3}(?:-?[0-9a-fA-F]{12})?)")


def is_ticket_reference(reference: str) -> bool:
    """A ticket number: letters, digits and separators, with at least one digit."""
    return bool(TICKET_REFERENCE.fullmatch(reference)) and any(c.isdigit() for c in reference)


def request_reference_prefix(reference: str) -> str | None:
    """The hex digits a privacy-request reference names (dashes and a leading # dropped), or None."""
    found = _REQUEST_REFERENCE.fullmatch(reference.strip())
    return found.group(1).replace("-", "").lower() if found else None


def _privacy_requests() -> QuerySet[Any]:
    return apps.get_model("privacy_requests", "PrivacyRequest")._default_manager.all()


def privacy_requests_referenced(*, consumer_id: int, reference: str) -> list[Any]:
    """This consumer's privacy requests whose id the reference names (none if it names no request)."""
    prefix = request_reference_prefix(reference)
    if prefix is None:
        return []
    requests = _privacy_requests().filter(user_id=consumer_id)
    return [r for r in requests if r.pk.hex.startswith(prefix)]


@transaction.atomic
def staff_access_reason_state(
    *, staff: User, consumer: User, code: StaffAccessReasonCode | str, reference: str
) -> StaffAccessReason:
    """A staff member states why they open ``consumer``'s records; it covers that consumer for a while."""
    now = timezone.now()
    return StaffAccessReason.objects.create(
        staff=staff,
        consumer=consumer,
        code=StaffAccessReasonCode(code),
        reference=reference.strip(),
        stated_at=now,
        expires_at=now + timedelta(minutes=settings.STAFF_ACCESS_REASON_MINUTES),
    )


def staff_access_reason_current(*, staff: User, consumer: User) -> StaffAccessReason | None:
    """The reason that lets ``staff`` open ``consumer``'s records now, the latest stated if several."""
    return (
        StaffAccessReason.objects.filter(staff=staff, consumer=consumer, expires_at__gt=timezone.now())
        .order_by("-expires_at", "-pk")
        .first()
    )


@dataclass(frozen=True)
class StaffAccessJustification:
    """Staff accesses in a period, and those no open privacy request or ticket reference justifies."""

    total: int
    # No reason at all, or a reason other than privacy-request handling without a ticket number.
    without_ticket: int
    # "Privacy request handling" whose reference names none of the consumer's requests open at the time.
    without_open_request: int

    @property
    def unjustified(self) -> int:
        return self.without_ticket + self.without_open_request


def _open_at(request: Any, moment: datetime) -> bool:
    if request.created_at > moment:
        return False
    ended = [t for t in (request.completed_at, request.cancelled_at, request.rejected_at) if t is not None]
    return not any(t <= moment for t in ended)


def staff_access_justification(*, since: datetime, until: datetime) -> StaffAccessJustification:
    """Count the staff accesses with ``since <= accessed_at < until`` and the unjustified ones among them.

    Staff accesses are few beside partners' (people open records by hand), so the references are
    matched here rather than in SQL: two queries whatever the period.
    """
    events = list(
        AccessEvent.objects.filter(
            partner__slug=STAFF_PARTNER_SLUG, accessed_at__gte=since, accessed_at__lt=until
        ).values_list("user_id", "accessed_at", "staff_reason", "staff_reference")
    )
    handling = [e for e in events if e[2] == StaffAccessReasonCode.PRIVACY_REQUEST]
    requests: dict[int, list[Any]] = {}
    if handling:
        for request in _privacy_requests().filter(user_id__in={e[0] for e in handling}):
            requests.setdefault(request.user_id, []).append(request)
    without_ticket = without_open_request = 0
    for user_id, accessed_at, reason, reference in events:
        if reason == StaffAccessReasonCode.PRIVACY_REQUEST:
            prefix = request_reference_prefix(reference)
            matched = prefix is not None and any(
                r.pk.hex.startswith(prefix) and _open_at(r, accessed_at) for r in requests.get(user_id, [])
            )
            without_open_request += not matched
        elif not reason or not is_ticket_reference(reference):
            without_ticket += 1
    return StaffAccessJustification(
        total=len(events), without_ticket=without_ticket, without_open_request=without_open_request
    )
