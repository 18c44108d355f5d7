"""What a partner changed itself over the API (scope ``webhooks:manage``), for its admin page."""

from dataclasses import dataclass
from datetime import datetime

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit.actions import AuditAction
from audit.models import ActorKind, AuditEvent
from consents.models import Partner

SELF_SERVICE_ACTIONS = (
    AuditAction.PARTNER_WEBHOOK_URL_CHANGED,
    AuditAction.PARTNER_WEBHOOK_SECRET_ROTATED,
    AuditAction.PARTNER_WEBHOOK_TEST_SENT,
    AuditAction.OUTBOX_EVENT_REDRIVEN,
)


@dataclass(frozen=True)
class SelfServiceChange:
    at: datetime
    what: str
    detail: str


def partner_self_service_changes(*, partner: Partner, limit: int = 20) -> list[SelfServiceChange]:
    """The partner's own latest changes and requests, newest first, from the audit log."""
    audited = AuditEvent.objects.filter(
        actor_kind=ActorKind.PARTNER, actor_id=str(partner.pk), action__in=SELF_SERVICE_ACTIONS
    ).order_by("-occurred_at", "-id")[:limit]
    return [
        SelfServiceChange(event.occurred_at, AuditAction.label_of(event.action), _audit_detail(event))
        for event in audited
    ]


def _audit_detail(event: AuditEvent) -> str:
    data = event.data
    if event.action == AuditAction.PARTNER_WEBHOOK_URL_CHANGED:
        return data.get("origin") or _("none (feed only)")
    if event.action == AuditAction.PARTNER_WEBHOOK_SECRET_ROTATED:
        return _("new secret %(fingerprint)s") % {"fingerprint": data.get("fingerprint", "")}
    if "events" in data:
        count = int(data["events"])
        return ngettext("%(count)d dead letter", "%(count)d dead letters", count) % {"count": count}
    return _("event %(id)s") % {"id": event.target_id}
