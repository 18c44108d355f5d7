"""What a partner changed itself over the API (scope ``webhooks:manage``), for its admin page."""

from dataclasses import dataclass
from datetime import datetime

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit.actions import AuditAction
from audit.models import ActorKind, AuditEvent
from consents.models import Partner

SELF_SERVICE_ACTIONS = (AuditAction.PARTNER_WEBHOOK_SECRET_ROTATED, AuditAction.OUTBOX_EVENT_REDRIVEN)
URL_CHANGE_REASON_PREFIX = f"webhook URL changed by {ActorKind.PARTNER}"


@dataclass(frozen=True)
class SelfServiceChange:
    at: datetime
    what: str
    detail: str


def partner_self_service_changes(*, partner: Partner, limit: int = 20) -> list[SelfServiceChange]:
    """The partner's own latest changes, newest first.

    URL changes come from its history, rotations and re-deliveries from the audit log.
    """
    audited = AuditEvent.objects.filter(
        actor_kind=ActorKind.PARTNER, actor_id=str(partner.pk), action__in=SELF_SERVICE_ACTIONS
    ).order_by("-occurred_at", "-id")[:limit]
    changes = [
        SelfServiceChange(event.occurred_at, AuditAction.label_of(event.action), _audit_detail(event))
        for event in audited
    ]
    history = partner.history.filter(history_change_reason__startswith=URL_CHANGE_REASON_PREFIX).order_by(
        "-history_date"
    )[:limit]
    changes += [
        SelfServiceChange(row.history_date, _("Webhook URL changed"), row.webhook_url or _("none (feed only)"))
        for row in history
    ]
    return sorted(changes, key=lambda change: change.at, reverse=True)[:limit]


def _audit_detail(event: AuditEvent) -> str:
    data = event.data
    if event.action == AuditAction.PARTNER_WEBHOOK_SECRET_ROTATED:
        return _("new secret %(fingerprint)s") % {"fingerprint": data.get("fingerprint", "")}
    if "events" in data:
        count = int(data["events"])
        return ngettext("%(count)d dead letter", "%(count)d dead letters", count) % {"count": count}
    return _("event %(id)s") % {"id": event.target_id}
