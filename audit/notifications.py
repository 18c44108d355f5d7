"""Which emails each consumer was sent, so that a notification task run twice sends each once."""

from collections.abc import Sequence
from datetime import datetime

from django.db import IntegrityError, transaction

from audit.models import NotificationKind, NotificationSent


def notification_claim(*, user_id: int, kind: NotificationKind, key: str) -> bool:
    """Record that the email ``kind`` about ``key`` goes to this consumer; ``False`` if it already went.

    The claim comes before the email (the unique key settles two runs side by side); a send that
    fails gives the claim back with ``notification_release`` so that a retry sends it.
    """
    try:
        with transaction.atomic():
            NotificationSent.objects.create(user_id=user_id, kind=kind, key=key)
    except IntegrityError:
        return False
    return True


def notification_release(*, user_id: int, kind: NotificationKind, key: str) -> None:
    """Forget a claim whose email could not be sent, so that the next run tries again."""
    NotificationSent.objects.filter(user_id=user_id, kind=kind, key=key).delete()


def notification_claim_all(*, user_id: int, kind: NotificationKind, keys: Sequence[str]) -> bool:
    """Claim one email about several things (``keys``) at once: ``False``, claiming none, if any already went.

    For an email that covers many items, each told once (the flagged accesses it lists).
    """
    try:
        with transaction.atomic():
            NotificationSent.objects.bulk_create(
                [NotificationSent(user_id=user_id, kind=kind, key=key) for key in keys], batch_size=500
            )
    except IntegrityError:
        return False
    return True


def notification_release_all(*, user_id: int, kind: NotificationKind, keys: Sequence[str]) -> None:
    """Forget the claims of an email that could not be sent (``notification_claim_all``)."""
    NotificationSent.objects.filter(user_id=user_id, kind=kind, key__in=list(keys)).delete()


def notification_keys_since(*, user_id: int, kind: NotificationKind, since: datetime) -> set[str]:
    """What the emails of ``kind`` sent to this consumer since ``since`` were about."""
    sent = NotificationSent.objects.filter(user_id=user_id, kind=kind, sent_at__gte=since)
    return set(sent.values_list("key", flat=True))
