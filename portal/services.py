"""State changes of the consumer's own account data."""

from django.db import transaction
from django.utils import translation

from audit.actions import AuditAction
from audit.services import Actor, event_record
from portal.models import User
from portal.notifications import SETTING_NAMES


@transaction.atomic
def profile_update(
    *, user: User, first_name: str, last_name: str, jurisdiction: str, time_zone: str, actor: Actor
) -> list[str]:
    """Change the consumer's name, privacy law and time zone; the names of the changed fields (never their values)."""
    user = User.objects.select_for_update().get(pk=user.pk)
    values = {
        "first_name": first_name.strip(),
        "last_name": last_name.strip(),
        "jurisdiction": jurisdiction,
        "time_zone": time_zone,
    }
    changed = [name for name, value in values.items() if getattr(user, name) != value]
    if not changed:
        return []
    for name in changed:
        setattr(user, name, values[name])
    user.save(update_fields=changed)
    # Field names only: the audit log outlives a deleted account and must not hold personal data.
    event_record(actor=actor, subject=user, action=AuditAction.PROFILE_UPDATED, target=user, data={"fields": changed})
    return changed


@transaction.atomic
def time_zone_prefill(*, user: User, time_zone: str, actor: Actor) -> bool:
    """Take the zone the consumer's browser reports, only while theirs is unknown; whether it was taken.

    A zone the consumer already has (chosen on the profile or taken earlier) is never replaced, so a
    laptop abroad or a browser set differently does not move their times behind their back.
    """
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.time_zone:
        return False
    user.time_zone = time_zone
    user.save(update_fields=["time_zone"])
    event_record(
        actor=actor, subject=user, action=AuditAction.PROFILE_UPDATED, target=user, data={"fields": ["time_zone"]}
    )
    return True


@transaction.atomic
def notification_settings_update(*, user: User, actor: Actor, **values: bool) -> list[str]:
    """Change which emails the consumer gets (``portal.notifications.SETTING_NAMES``); the changed names."""
    unknown = values.keys() - set(SETTING_NAMES)
    if unknown:
        raise ValueError(f"not notification settings: {sorted(unknown)}")
    user = User.objects.select_for_update().get(pk=user.pk)
    changed = [name for name, value in values.items() if getattr(user, name) != value]
    if not changed:
        return []
    for name in changed:
        setattr(user, name, values[name])
    user.save(update_fields=changed)
    event_record(actor=actor, subject=user, action=AuditAction.PROFILE_UPDATED, target=user, data={"fields": changed})
    return changed


def user_language_record(*, user: User, language: str) -> None:
    """Remember the language the consumer uses the site in, for the emails they get later.

    Writes only when it changed, so calling it at every login or language switch costs a comparison.
    """
    try:
        code = translation.get_supported_language_variant(language)
    except LookupError:
        return
    if user.language == code:
        return
    User.objects.filter(pk=user.pk).update(language=code)
    user.language = code
