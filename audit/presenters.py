"""Plain-language wording of audit events for the consumer's activity page."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from audit.actions import AuditAction, AuditReason
from audit.models import (
    NOTE_REMOVED,
    AccessEvent,
    ActorKind,
    AuditEvent,
    AuditNote,
    StaffAccessReasonCode,
    catalogue,
)
from audit.selectors import event_note

# The consumer reads their own activity: these actions get their own wording (the rest show their label).
ACTIONS: dict[str, Promise] = {
    AuditAction.CONSENT_GRANTED: _("You gave consent to “%(purpose)s”"),
    AuditAction.CONSENT_REVOKED: _("Consent to “%(purpose)s” was withdrawn"),
    AuditAction.CONSENT_EXPIRED: _("Consent to “%(purpose)s” expired"),
    AuditAction.CONSENT_RECONSENT_REQUIRED: _("“%(purpose)s” has a new notice and needs your decision"),
    AuditAction.ACCESS_STAFF_VIEWED: _("Our staff opened your records"),
    AuditAction.PARTNER_EVENT_ACKNOWLEDGED: _("A partner confirmed it acted on a change"),
}

# An authorised agent's request (privacy_requests.services.agents), by step; ``%(kind)s`` from AGENT_KINDS.
AGENT_STEPS: dict[str, Promise] = {
    "received": _("Request made for you: %(kind)s"),
    "confirmed": _("You confirmed the request made for you: %(kind)s"),
    "verified": _("Our staff checked your authorised agent's permission: %(kind)s"),
    "declined": _("You declined the request made in your name: %(kind)s"),
    "rejected": _("Our staff did not accept the agent's permission, so nothing was done: %(kind)s"),
}
AGENT_KINDS: dict[str, Promise] = {
    "export": _("a copy of your data"),
    "deletion": _("deletion of your account"),
    "opt_out": _("opt-out of the sale or sharing of your data"),
}

SYSTEM_ACTORS: dict[str, Promise] = {
    "expiry": _("Automatic expiry"),
    "gpc": _("Your browser's Global Privacy Control signal"),
}


# What a staff member opened, by the model label ``access_event_record_staff`` keeps.
STAFF_RECORDS: dict[str, Promise] = {
    "portal.user": _("your account"),
    "account.emailaddress": _("your email addresses"),
    "consents.consent": _("your consents"),
    "consents.consentreceipt": _("your consent receipts"),
    "privacy_requests.privacyrequest": _("your privacy requests"),
    "audit.auditevent": _("your activity history"),
    "audit.accessevent": _("your access log"),
}

STAFF_REASONS: dict[str, Promise] = {
    StaffAccessReasonCode.SUPPORT_REQUEST: _("your support request %(reference)s"),
    StaffAccessReasonCode.FRAUD_INVESTIGATION: _("a fraud investigation, reference %(reference)s"),
    StaffAccessReasonCode.LEGAL_REQUEST: _("a legal request, reference %(reference)s"),
    StaffAccessReasonCode.PRIVACY_REQUEST: _("your privacy request %(reference)s"),
}


def staff_access_text(event: AccessEvent) -> str:
    """A staff access in the consumer's words and language: what was looked at, and why.

    Plain text: templates escape it, so a reference is shown exactly as the staff member typed it.
    """
    records = str(STAFF_RECORDS.get(event.staff_records, _("your records")))
    reason = STAFF_REASONS.get(event.staff_reason)
    if reason is None:
        return str(_("Customer support looked at %(records)s")) % {"records": records}
    return str(_("Customer support looked at %(records)s — %(reason)s")) % {
        "records": records,
        "reason": str(reason) % {"reference": event.staff_reference},
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
    if event.actor_kind == ActorKind.SYSTEM and event.actor_label == "authorised agent":
        note = event_note(event)
        if note is not None and note.text:
            return str(_("%(agent)s, your authorised agent")) % {"agent": note.text}
        return str(_("Your authorised agent"))
    if event.data.get("method") == "gpc":
        return str(SYSTEM_ACTORS["gpc"])
    if event.actor_kind == ActorKind.CONSUMER:
        return str(_("You"))
    if event.actor_kind == ActorKind.STAFF:
        return str(_("Our staff"))
    if event.actor_kind == ActorKind.PARTNER:
        return event.actor_label or str(_("A partner"))
    return str(SYSTEM_ACTORS.get(event.actor_label, _("The portal, automatically")))


def _headline(action: str) -> str:
    if action in AuditAction.values:
        return AuditAction.label_of(action)
    # An action recorded by a version that knew more of them than this one.
    return action.replace(".", ": ").replace("_", " ")


def _purpose_name(row: tuple[str, str, dict[str, Any]]) -> str:
    """The purpose's name in the active language when its notice gives one (``translations`` of consents)."""
    _slug, name, translations = row
    language = (get_language() or "").lower()
    return str((translations.get(language) or {}).get("name") or name)


def _staff_accesses(events: list[AuditEvent]) -> dict[str, AccessEvent]:
    """The access events behind the staff openings listed, only ever the listed subjects' own."""
    opened = [e for e in events if e.action == AuditAction.ACCESS_STAFF_VIEWED and e.target_id]
    if not opened:
        return {}
    found = AccessEvent.objects.filter(
        pk__in=[e.target_id for e in opened], user_id__in={e.subject_id for e in opened}
    ).only("staff_reason", "staff_reference", "staff_records")
    return {str(access.pk): access for access in found}


def activity_entries(events: list[AuditEvent]) -> list[ActivityEntry]:
    staff_accesses = _staff_accesses(events)
    slugs = {e.data.get("purpose") for e in events if e.data.get("purpose")}
    rows = catalogue("purpose").filter(slug__in=slugs).values_list("slug", "name", "translations") if slugs else []
    names = {row[0]: _purpose_name(row) for row in rows}
    entries = []
    for event in events:
        data: dict[str, Any] = event.data
        template = ACTIONS.get(event.action)
        purpose = names.get(data.get("purpose", ""), data.get("purpose", ""))
        headline = str(template) % {"purpose": purpose} if template else _headline(event.action)
        if step := AGENT_STEPS.get(data.get("agent_step", "")):
            headline = str(step) % {"kind": AGENT_KINDS.get(data.get("kind", ""), data.get("kind", ""))}
        if event.action == AuditAction.ACCESS_STAFF_VIEWED and event.target_id in staff_accesses:
            headline = staff_access_text(staff_accesses[event.target_id])
        note = ""
        if data.get("reason"):
            note = str(_("Reason: %(reason)s")) % {"reason": AuditReason.label_of(data["reason"])}
        entries.append(ActivityEntry(event.occurred_at, event.action, headline, _who(event), note))
    return entries
