"""Which emails each consumer was sent, so that a notification task run twice sends each once."""

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


def notification_last_key(*, user_id: int, kind: NotificationKind) -> str | None:
    """The key of the latest email of ``kind`` sent to this consumer, if any."""
    sent = NotificationSent.objects.filter(user_id=user_id, kind=kind).order_by("-pk")
    return sent.values_list("key", flat=True).first()
