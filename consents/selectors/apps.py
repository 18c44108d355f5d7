"""Reads for the consumer's connected apps: each grant with what it allows and when the app last read data."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max

from audit.models import AccessEvent
from consents.models import AppGrant, DataCategory
from portal.models import User


@dataclass
class ConnectedAppRow:
    grant: AppGrant
    categories: list[DataCategory]
    last_access: datetime | None

    @property
    def is_active(self) -> bool:
        return self.grant.is_active


def connected_apps_for(user: User) -> tuple[list[ConnectedAppRow], list[ConnectedAppRow]]:
    """The consumer's grants: (running, ended), newest first; last access by the app's partner for the purpose."""
    grants = list(
        AppGrant.objects.filter(user=user)
        .select_related("app__partner", "purpose")
        .prefetch_related("data_categories")
        .order_by("-granted_at", "pk")
    )
    last = {
        (row["partner_id"], row["purpose_id"]): row["last"]
        for row in AccessEvent.objects.filter(user=user, partner_id__in={g.app.partner_id for g in grants})
        .values("partner_id", "purpose_id")
        .annotate(last=Max("accessed_at"))
    }
    rows = [
        ConnectedAppRow(
            grant=grant,
            categories=sorted(grant.data_categories.all(), key=lambda c: c.name),
            last_access=last.get((grant.app.partner_id, grant.purpose_id)),
        )
        for grant in grants
    ]
    # A grant whose expiry passed before the periodic task ended it is already over for the consumer.
    return [r for r in rows if r.is_active], [r for r in rows if not r.is_active]


def app_grant_for_user(user: User, grant_id: uuid.UUID) -> AppGrant | None:
    """One of the consumer's own grants (``None`` for anyone else's: the view answers 404)."""
    return (
        AppGrant.objects.select_related("app__partner", "purpose")
        .prefetch_related("data_categories")
        .filter(user=user, pk=grant_id)
        .first()
    )
