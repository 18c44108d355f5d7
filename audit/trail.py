"""A subject's full audit trail as one signed document (for a regulator or a complaint)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.selectors import audit_chain_breaks, event_note
from audit.services import Actor, chain_key, event_record
from audit.signing import document_sign, public_jwks

if TYPE_CHECKING:
    from portal.models import User


def audit_trail_document(*, subject: User, requested_by: User) -> str:
    """A JWS (``audit.signing``: the receipts' key) over every audit event of ``subject`` and the chain's state.

    The export itself is recorded in the subject's trail first, so the document includes it.
    """
    event_record(actor=Actor.staff(requested_by), subject=subject, action=AuditAction.AUDIT_TRAIL_EXPORTED)
    chain = chain_key(subject)
    breaks = [str(b) for b in audit_chain_breaks(chain)]
    events = [
        {
            "seq": e.seq,
            "occurred_at": e.occurred_at.isoformat(),
            "actor_kind": e.actor_kind,
            "actor_id": e.actor_id,
            "actor_label": e.actor_label,
            "action": e.action,
            "action_label": AuditAction.label_of(e.action),
            "target_type": e.target_type,
            "target_id": e.target_id,
            "data": e.data,
            # The free text beside the sealed row, while it exists (``None`` once erased or never written).
            "note": note.text if (note := event_note(e)) is not None and note.scrubbed_at is None else None,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        for e in AuditEvent.objects.filter(chain=chain).select_related("note").order_by("seq").iterator(chunk_size=2000)
    ]
    payload = {
        "type": "audit-trail",
        "chain": chain,
        "subject_id": subject.pk,
        "generated_at": timezone.now().isoformat(),
        "generated_by": requested_by.email,
        "chain_intact": not breaks,
        "chain_breaks": breaks,
        "events": events,
        "verification_key": public_jwks()["keys"][0]["kid"],
    }
    return document_sign(payload)
