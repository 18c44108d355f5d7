"""What needs a staff member's attention, shown at the top of the admin index."""

from dataclasses import dataclass
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import ngettext


@dataclass(frozen=True)
class Alert:
    message: str
    url: str


def admin_alerts() -> list[Alert]:
    from audit.models import AccessEvent, AccessVerdict

    alerts = []
    since = timezone.now() - timedelta(days=30)
    flagged = AccessEvent.objects.filter(received_at__gte=since).exclude(verdict=AccessVerdict.COVERED).count()
    if flagged:
        alerts.append(
            Alert(
                ngettext(
                    "%(count)d data access without consent or outside sharing in the last 30 days",
                    "%(count)d data accesses without consent or outside sharing in the last 30 days",
                    flagged,
                )
                % {"count": flagged},
                reverse("admin:audit_accessevent_changelist") + "?flagged=yes",
            )
        )
    return alerts
