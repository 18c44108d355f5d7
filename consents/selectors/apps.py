"""Reads for the consumer's connected apps: each grant with what it allows and when the app last read data."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce, Now

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

    @property
    def is_pending(self) -> bool:
        """Approved, but the app has not yet exchanged its code: not connected (yet)."""
        return self.grant.connected_at is None


def connected_apps_for(user: User) -> tuple[list[ConnectedAppRow], list[ConnectedAppRow]]:
    """The consumer's grants: (running, ended), newest first, each with the app's last read under it.

    The last read is the partner's latest access for the grant's purpose while the grant ran
    (from its approval to its end), so a connection made again does not inherit the reads of the
    one it replaced.
    """
    last_read = (
        AccessEvent.objects.filter(
            user=OuterRef("user"),
            partner=OuterRef("app__partner"),
            purpose=OuterRef("purpose"),
            accessed_at__gte=OuterRef("granted_at"),
            accessed_at__lte=Coalesce(OuterRef("revoked_at"), Now()),
        )
        .order_by("-accessed_at")
        .values("accessed_at")[:1]
    )
    grants = (
        AppGrant.objects.filter(user=user)
        .select_related("app__partner", "purpose")
        .prefetch_related("data_categories")
        .annotate(last_access=Subquery(last_read))
        .order_by("-granted_at", "pk")
    )
    rows = [
        ConnectedAppRow(
            grant=grant,
            categories=sorted(grant.data_categories.all(), key=lambda c: c.name),
            last_access=grant.last_access,
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
