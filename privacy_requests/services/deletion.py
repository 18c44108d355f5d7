"""Carrying out a deletion: revoke every consent, tell every partner, scrub the account, keep only the proof.

The steps run in one transaction, in order, once the grace period is over. Personal data is
scrubbed by the ``SCRUBBERS`` below, one per place it lives; a new place (a new model holding
personal data) gets a new scrubber. What remains afterwards is pseudonymous: the account row as a
tombstone (no name, no address, no password), the hash-chained audit log that refers to it, the
pairwise partner ids the erasure requests name, and the consent proofs until their retention ends.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from importlib import import_module
from typing import Any

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth import SESSION_KEY
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from simple_history.models import registered_models

from audit.actions import AuditAction
from audit.models import AccessEvent
from audit.services import Actor, event_record
from consents.errors import DomainError
from consents.models import AppGrant, Consent, ConsentReceipt, ConsentStatus, RevocationReason
from consents.models.outbox import AckStatus
from consents.services.apps import app_grant_revoke
from consents.services.consents import consent_revoke
from consents.services.outbox import deliveries_gathered, outbox_subject_erasure
from portal.models import User
from privacy_requests.emails import request_email_on_commit
from privacy_requests.models import (
    ConsentProof,
    PartnerTaskState,
    PrivacyRequest,
    PrivacyRequestPartnerTask,
    RequestKind,
    RequestStatus,
)
from privacy_requests.retention import free_text_scrub
from privacy_requests.services.requests import status_transition
from privacy_requests.storage import export_storage

SCRUBBED_LABEL = "(deleted account)"
BATCH = 500


@dataclass
class ScrubContext:
    request: PrivacyRequest
    user: User
    email: str
    tombstone: str
    now: datetime
    files: list[str] = field(default_factory=list)


def _consent_proofs_keep(ctx: ScrubContext) -> int:
    """Copy every signed receipt into a pseudonymous proof kept for the retention period."""
    retain_until = ctx.now + timedelta(days=settings.CONSENT_PROOF_RETENTION_DAYS)
    batch: list[ConsentProof] = []
    kept = 0
    for receipt in ConsentReceipt.objects.filter(user=ctx.user).order_by("issued_at").iterator(chunk_size=BATCH):
        purpose = receipt.payload["services"][0]["purposes"][0]
        batch.append(
            ConsentProof(
                principal_id=receipt.payload["piiPrincipalId"],
                receipt_id=receipt.pk,
                purpose_slug=purpose["purposeId"],
                notice_version=purpose["noticeVersion"],
                event=receipt.event,
                issued_at=receipt.issued_at,
                receipt_sha256=receipt.sha256,
                jws=receipt.jws,
                kept_since=ctx.now,
                retain_until=retain_until,
            )
        )
        if len(batch) >= BATCH:
            kept += len(ConsentProof.objects.bulk_create(batch))
            batch = []
    kept += len(ConsentProof.objects.bulk_create(batch))
    return kept


def _consents_remove(ctx: ScrubContext) -> int:
    """The consents, their receipts and their row history (the notes the consumer wrote live there)."""
    ConsentReceipt.objects.filter(user=ctx.user).delete()
    removed, _by_model = Consent.objects.filter(user=ctx.user).delete()
    # Deleting wrote one more history row per consent; the history goes with the rest.
    Consent.history.filter(user_id=ctx.user.pk).delete()
    return removed


def _app_grant_notes_scrub(ctx: ScrubContext) -> int:
    """The ended grants stay as pseudonymous facts; the notes written on withdrawal (and their history) go."""
    AppGrant.history.filter(user_id=ctx.user.pk).exclude(revocation_note="").update(revocation_note="")
    return AppGrant.objects.filter(user=ctx.user).exclude(revocation_note="").update(revocation_note="")


def _export_files_forget(ctx: ScrubContext) -> int:
    exports = PrivacyRequest.objects.filter(user=ctx.user).exclude(result_file="")
    ctx.files.extend(exports.values_list("result_file", flat=True))
    return exports.update(result_file="", file_deleted_at=ctx.now)


def _access_details_scrub(ctx: ScrubContext) -> int:
    """Partners' free-text notes on their accesses may name the person; the facts themselves stay."""
    return AccessEvent.objects.filter(user=ctx.user).exclude(detail="").update(detail="")


def _free_text_scrub(ctx: ScrubContext) -> int:
    return free_text_scrub(user=ctx.user, now=ctx.now)


def _email_addresses_remove(ctx: ScrubContext) -> int:
    return EmailAddress.objects.filter(user=ctx.user).delete()[0]


def _authenticators_remove(ctx: ScrubContext) -> int:
    return Authenticator.objects.filter(user=ctx.user).delete()[0]


def _session_is_theirs(data: dict[str, Any], ctx: ScrubContext) -> bool:
    """Signed in as them, or part-way through signing in as them (allauth keeps the address meanwhile)."""
    user_id = str(ctx.user.pk)
    pending = data.get("account_login")
    return (
        data.get(SESSION_KEY) == user_id
        or data.get("account_authentication_methods_user") == user_id
        or (isinstance(pending, dict) and str(pending.get("user_pk")) == user_id)
        or ctx.email.casefold() in str(data).casefold()
    )


def _sessions_end(ctx: ScrubContext) -> int:
    """End the account's sessions everywhere. Stores that cannot be listed (cache, cookies) are cut off
    anyway: the unusable password changes the session hash Django checks on every request."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store, "get_model_class"):
        return 0
    sessions = store.get_model_class().objects.iterator(chunk_size=BATCH)
    keys = [session.session_key for session in sessions if _session_is_theirs(session.get_decoded(), ctx)]
    for key in keys:
        store(session_key=key).delete()
    return len(keys)


def _admin_log_scrub(ctx: ScrubContext) -> int:
    """The admin's change log names objects by their ``str()``, which for the account is its address."""
    user_type = ContentType.objects.get_for_model(User)
    return LogEntry.objects.filter(
        Q(content_type=user_type, object_id=str(ctx.user.pk)) | Q(object_repr__icontains=ctx.email)
    ).update(object_repr=SCRUBBED_LABEL)


def _user_history_scrub(ctx: ScrubContext) -> int:
    """Row history of the account itself, whichever app registers it with django-simple-history."""
    scrubbed = 0
    for historical in list(registered_models.values()):
        if getattr(historical, "instance_type", None) is not User:
            continue
        names = {f.name for f in historical._meta.get_fields()}
        values = {"email": ctx.tombstone, "first_name": "", "last_name": "", "password": "!"}
        scrubbed += historical.objects.filter(id=ctx.user.pk).update(
            **{name: value for name, value in values.items() if name in names}
        )
    return scrubbed


def _user_row_scrub(ctx: ScrubContext) -> int:
    user = ctx.user
    user.email = ctx.tombstone
    user.first_name = ""
    user.last_name = ""
    user.set_unusable_password()
    user.is_active = False
    user.is_staff = False
    user.is_superuser = False
    user.last_login = None
    scrubbed = ["email", "first_name", "last_name", "password", "is_active", "is_staff", "is_superuser", "last_login"]
    user.save(update_fields=scrubbed)
    user.groups.clear()
    user.user_permissions.clear()
    return 1


Scrubber = Callable[[ScrubContext], int]

# In order: the proof is copied before the consents go; the address is used before it is replaced.
SCRUBBERS: list[tuple[str, Scrubber]] = [
    ("consent_proofs_kept", _consent_proofs_keep),
    ("consents_removed", _consents_remove),
    ("app_grant_notes_scrubbed", _app_grant_notes_scrub),
    ("export_files_deleted", _export_files_forget),
    ("access_event_details_scrubbed", _access_details_scrub),
    ("free_text_scrubbed", _free_text_scrub),
    ("email_addresses_removed", _email_addresses_remove),
    ("authenticators_removed", _authenticators_remove),
    ("sessions_ended", _sessions_end),
    ("admin_log_entries_scrubbed", _admin_log_scrub),
    ("history_rows_scrubbed", _user_history_scrub),
    ("account_scrubbed", _user_row_scrub),
]


def _consents_revoke(user: User, actor: Actor) -> tuple[list[str], list[str]]:
    """Every live consent withdrawn with reason ``account_deleted``; consent_revoke tells the partners."""
    revoked, skipped = [], []
    live = Consent.objects.filter(
        user=user, status__in=[ConsentStatus.GRANTED, ConsentStatus.RECONSENT_REQUIRED]
    ).select_related("purpose")
    # Each partner gets the withdrawals in one delivery task, not one task per purpose.
    with deliveries_gathered():
        for consent in live:
            try:
                consent_revoke(user=user, purpose=consent.purpose, actor=actor, reason=RevocationReason.ACCOUNT_DELETED)
            except DomainError:
                # A purpose withdrawn from offer cannot be revoked through the consent flow; the erasure
                # request below still reaches every partner that received the consumer.
                skipped.append(consent.purpose.slug)
            else:
                revoked.append(consent.purpose.slug)
    return revoked, skipped


def _app_grants_end(user: User, actor: Actor) -> list[str]:
    """Every live connected-app grant ended with reason ``account_deleted``, its tokens revoked."""
    live = AppGrant.objects.filter(user=user, status=ConsentStatus.GRANTED).order_by("granted_at", "pk")
    return [str(app_grant_revoke(grant, initiator=actor, reason=RevocationReason.ACCOUNT_DELETED).pk) for grant in live]


def _partners_tell(request: PrivacyRequest, user: User, actor: Actor) -> list[PrivacyRequestPartnerTask]:
    events = outbox_subject_erasure(user=user, request_id=str(request.pk), due_at=request.due_at)
    tasks = [PrivacyRequestPartnerTask.objects.create(request=request, partner=e.partner, event=e) for e in events]
    event_record(
        actor=actor,
        subject=user,
        action=AuditAction.PRIVACY_REQUEST_ERASURE_REQUESTED,
        target=request,
        data={"partners": [t.partner.slug for t in tasks]},
    )
    return tasks


def _complete(request: PrivacyRequest, actor: Actor) -> None:
    """Close a deletion and write to the address captured before the account was scrubbed, then forget it.

    The partners' confirmations and staff notes that arrived since the account was scrubbed go too.
    """
    address = request.contact_email
    request.contact_email = ""
    request.cancel_nonce = ""
    request.completed_at = timezone.now()
    scrubbed = free_text_scrub(user=request.user, now=request.completed_at)
    status_transition(
        request,
        RequestStatus.COMPLETED,
        actor=actor,
        fields=("contact_email", "cancel_nonce", "completed_at"),
        data={"free_text_scrubbed": scrubbed},
    )
    if address:
        request_email_on_commit(request=request, template="deletion_completed", to=address)


def privacy_request_deletion_execute(*, request_id: Any) -> PrivacyRequest | None:
    """Carry out a deletion whose grace period is over; ``None`` if there is nothing to do (any more)."""
    with transaction.atomic():
        request = PrivacyRequest.objects.select_for_update().filter(pk=request_id).first()
        now = timezone.now()
        if (
            request is None
            or request.kind != RequestKind.DELETION
            or request.status != RequestStatus.RECEIVED
            or request.grace_ends_at is None
            or request.grace_ends_at > now
        ):
            return None
        user = User.objects.select_for_update().get(pk=request.user_id)
        request.user = user
        actor = Actor.system("account deletion")
        status_transition(request, RequestStatus.PROCESSING, actor=actor)

        revoked, skipped = _consents_revoke(user, actor)
        grants_ended = _app_grants_end(user, actor)
        tasks = _partners_tell(request, user, actor)
        ctx = ScrubContext(
            request=request,
            user=user,
            email=user.email,
            tombstone=f"deleted-{uuid.uuid4().hex}@deleted.invalid",
            now=now,
        )
        counts: dict[str, Any] = {name: scrub(ctx) for name, scrub in SCRUBBERS}
        event_record(
            actor=actor,
            subject=user,
            action=AuditAction.ACCOUNT_SCRUBBED,
            target=request,
            data=counts
            | {"consents_revoked": revoked, "consents_not_revocable": skipped, "app_grants_ended": grants_ended},
        )
        if tasks:
            status_transition(
                request, RequestStatus.WAITING_PARTNERS, actor=actor, data={"partners": [t.partner.slug for t in tasks]}
            )
        else:
            _complete(request, actor)
        transaction.on_commit(partial(_files_delete, list(ctx.files)), robust=True)
    return request


def _files_delete(names: list[str]) -> None:
    for name in names:
        export_storage().delete(name)


def _complete_if_done(request: PrivacyRequest, actor: Actor) -> bool:
    if request.partner_tasks.exclude(state__in=[PartnerTaskState.ACKNOWLEDGED, PartnerTaskState.RECORDED]).exists():
        return False
    _complete(request, actor)
    return True


@transaction.atomic
def privacy_request_acks_sync(*, request_id: Any) -> PrivacyRequest | None:
    """Take over the partners' acknowledgements of their erasure events; complete when all have confirmed."""
    request = PrivacyRequest.objects.select_for_update().select_related("user").filter(pk=request_id).first()
    if request is None or request.status != RequestStatus.WAITING_PARTNERS:
        return None
    open_tasks = request.partner_tasks.filter(state__in=[PartnerTaskState.PENDING, PartnerTaskState.FAILED])
    for task in open_tasks.select_related("event", "partner"):
        event = task.event
        if event is None or event.acked_at is None:
            continue
        state = PartnerTaskState.ACKNOWLEDGED if event.ack_status == AckStatus.PROCESSED else PartnerTaskState.FAILED
        if state == task.state and task.acked_at == event.acked_at:
            continue
        task.state = state
        task.acked_at = event.acked_at
        task.ack_detail = event.ack_detail[:1000]
        task.save(update_fields=["state", "acked_at", "ack_detail"])
        event_record(
            actor=Actor.partner(task.partner),
            subject=request.user,
            action=AuditAction(f"privacy_request.partner_{state}"),
            target=request,
            data={"partner": task.partner.slug, "acked_at": event.acked_at, "ack_status": event.ack_status},
        )
    _complete_if_done(request, Actor.system("partner acknowledgements"))
    return request


@transaction.atomic
def partner_task_record(*, task: PrivacyRequestPartnerTask, note: str, staff: User) -> PrivacyRequestPartnerTask:
    """Staff record a partner's confirmation that arrived by other means (email, letter, phone)."""
    request = PrivacyRequest.objects.select_for_update().select_related("user").get(pk=task.request_id)
    task = PrivacyRequestPartnerTask.objects.select_for_update().select_related("partner").get(pk=task.pk)
    note = note.strip()
    if request.status != RequestStatus.WAITING_PARTNERS or task.is_done:
        raise DomainError(_("This partner's confirmation is not outstanding."), code="not_outstanding")
    if not note:
        raise DomainError(_("Say how the confirmation arrived."), code="note_required")
    task.state = PartnerTaskState.RECORDED
    task.staff_note = note
    task.recorded_by = staff
    task.acked_at = timezone.now()
    task.save(update_fields=["state", "staff_note", "recorded_by", "acked_at"])
    event_record(
        actor=Actor.staff(staff),
        subject=request.user,
        action=AuditAction.PRIVACY_REQUEST_PARTNER_RECORDED,
        target=request,
        data={"partner": task.partner.slug},
        note=note,
    )
    _complete_if_done(request, Actor.staff(staff))
    return task


@transaction.atomic
def consent_proofs_purge(*, at: datetime | None = None) -> int:
    """Delete the consent proofs whose retention period is over; the number this run deleted.

    Counts what its own DELETE removed, not what it saw before: a second run side by side (a late
    beat tick) then finds the rows gone and records nothing, instead of claiming the same purge twice.
    """
    _, deleted = ConsentProof.objects.filter(retain_until__lte=at or timezone.now()).delete()
    count = deleted.get(ConsentProof._meta.label, 0)
    if count:
        event_record(
            actor=Actor.system("retention"),
            subject=None,
            action=AuditAction.CONSENT_PROOF_PURGED,
            data={"count": count},
        )
    return count
