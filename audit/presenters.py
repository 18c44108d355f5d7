"""Plain-language wording of audit events for the consumer's activity page."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from audit.models import NOTE_REMOVED, ActorKind, AuditEvent, AuditNote
from consents.models import Purpose

ACTIONS: dict[str, Promise] = {
    "consent.granted": _("You gave consent to “%(purpose)s”"),
    "consent.revoked": _("Consent to “%(purpose)s” was withdrawn"),
    "consent.expired": _("Consent to “%(purpose)s” expired"),
    "consent.reconsent_required": _("“%(purpose)s” has a new notice and needs your decision"),
    "access.staff_viewed": _("Our staff opened your records"),
    "partner.event_acknowledged": _("A partner confirmed it acted on a change"),
    "security.logged_in": _("Signed in"),
    "security.login_failed": _("A sign-in attempt failed"),
    "security.password_changed": _("Password changed"),
    "security.password_reset": _("Password reset"),
    "security.password_set": _("Password set"),
    "security.email_added": _("Email address added"),
    "security.email_removed": _("Email address removed"),
    "security.email_changed": _("Primary email address changed"),
    "security.email_confirmed": _("Email address confirmed"),
    "security.mfa_added": _("Two-factor authentication turned on"),
    "security.mfa_removed": _("Two-factor authentication turned off"),
    "security.mfa_reset": _("Recovery codes regenerated"),
    "security.signed_up": _("Account created"),
}

SYSTEM_ACTORS: dict[str, Promise] = {
    "expiry": _("Automatic expiry"),
    "gpc": _("Your browser's Global Privacy Control signal"),
}


def note_shown(note: AuditNote | None) -> str:
    """An event's free-text note as staff see it: the text while it exists, a placeholder once erased."""
    if note is None:
        return "—"
    if note.scrubbed_at is not None:
        return str(NOTE_REMOVED)
    return note.text


@dataclass
class ActivityEntry:
    occurred_at: datetime
    action: str
    headline: str
    who: str
    note: str


def _who(event: AuditEvent) -> str:
    if event.data.get("method") == "gpc":
        return str(SYSTEM_ACTORS["gpc"])
    if event.actor_kind == ActorKind.CONSUMER:
        return str(_("You"))
    if event.actor_kind == ActorKind.STAFF:
        return str(_("Our staff"))
    if event.actor_kind == ActorKind.PARTNER:
        return event.actor_label or str(_("A partner"))
    return str(SYSTEM_ACTORS.get(event.actor_label, _("The portal, automatically")))


def activity_entries(events: list[AuditEvent]) -> list[ActivityEntry]:
    slugs = {e.data.get("purpose") for e in events if e.data.get("purpose")}
    names = dict(Purpose.objects.filter(slug__in=slugs).values_list("slug", "name")) if slugs else {}
    entries = []
    for event in events:
        data: dict[str, Any] = event.data
        template = ACTIONS.get(event.action)
        purpose = names.get(data.get("purpose", ""), data.get("purpose", ""))
        headline = (
            str(template) % {"purpose": purpose} if template else event.action.replace(".", ": ").replace("_", " ")
        )
        note = ""
        if data.get("reason"):
            note = str(_("Reason: %(reason)s")) % {"reason": data["reason"].replace("_", " ")}
        entries.append(ActivityEntry(event.occurred_at, event.action, headline, _who(event), note))
    return entries
