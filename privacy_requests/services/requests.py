"""State changes of privacy requests: one function per change, each in one transaction with its audit event."""

import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import AuditAction
from audit.services import Actor, event_record
from consents.errors import DomainError
from portal.models import User
from privacy_requests.deadlines import due_at_compute, rule_for
from privacy_requests.emails import request_email_on_commit, staff_email_on_commit
from privacy_requests.models import (
    ACTIVE_STATUSES,
    AgentRequest,
    PrivacyRequest,
    PrivacyRequestExtension,
    RequestKind,
    RequestStatus,
)
from privacy_requests.storage import export_storage

# The system actor's label on events an authorised agent caused (audit.presenters names the agent).
AGENT_ACTOR = "authorised agent"

# Named after the package these links were first signed in; a new name would void links already emailed.
CANCEL_SALT = "portal.requests.cancel"


def _locked(request_id: Any) -> PrivacyRequest:
    return PrivacyRequest.objects.select_for_update().select_related("user").get(pk=request_id)


def status_transition(
    request: PrivacyRequest,
    status: str,
    *,
    actor: Actor,
    fields: tuple[str, ...] = (),
    data: dict[str, Any] | None = None,
) -> None:
    """Move the request to ``status``, saving ``fields`` along, and write the audit event."""
    request.status = status
    request.updated_at = timezone.now()
    request.save(update_fields=["status", "updated_at", *fields])
    event_record(
        actor=actor,
        subject=request.user,
        action=AuditAction(f"privacy_request.{status}"),
        target=request,
        data={"kind": request.kind, "due_at": request.due_at} | (data or {}),
    )


def _consumer_address(request: PrivacyRequest) -> str | None:
    """Where to write to: the address captured for a deletion, else the account's while it exists."""
    if request.contact_email:
        return request.contact_email
    return request.user.email if request.user.is_active else None


def _request_new(
    *, user: User, kind: str, language: str, agent_request: AgentRequest | None = None, **fields: Any
) -> PrivacyRequest:
    """Insert the request and its audit event; one an authorised agent made counts from the agent's receipt."""
    now = timezone.now()
    # CCPA § 7021(a): the deadline runs from the day the request is received, however long the
    # verification (the consumer's confirmation, or staff checking a power of attorney) takes.
    received_at = agent_request.received_at if agent_request is not None else now
    request = PrivacyRequest(
        user=user,
        kind=kind,
        jurisdiction=user.jurisdiction,
        language=language,
        created_at=received_at,
        updated_at=now,
        due_at=due_at_compute(received_at=received_at, jurisdiction=user.jurisdiction),
        **fields,
    )
    try:
        with transaction.atomic():
            request.save(force_insert=True)
    except IntegrityError as error:
        # The partial unique constraints: another request of this kind became active concurrently.
        raise _already_active(kind) from error
    data: dict[str, Any] = {"kind": kind, "jurisdiction": request.jurisdiction, "due_at": request.due_at}
    if agent_request is not None:
        data["agent_request"] = str(agent_request.pk)
    event_record(
        # The request is the agent's; the consumer's confirmation (or staff's check) is its own event.
        actor=Actor.system(AGENT_ACTOR) if agent_request is not None else Actor.consumer(user),
        subject=user,
        action=AuditAction.PRIVACY_REQUEST_RECEIVED,
        target=request,
        data=data,
        note=agent_request.agent_label if agent_request is not None else "",
    )
    return request


def _already_active(kind: str) -> DomainError:
    if kind == RequestKind.EXPORT:
        return DomainError(
            _(
                "A copy of your data is already being prepared. You can ask for another one when it is ready; "
                "we will email you."
            ),
            code="export_active",
        )
    return DomainError(
        _("You have already asked us to delete your account. You can follow or cancel that request below."),
        code="deletion_active",
    )


def _export_enqueue(request_id: str) -> None:
    from privacy_requests.tasks import privacy_export_build

    privacy_export_build.delay(request_id)


@transaction.atomic
def privacy_request_export_create(
    *, user: User, language: str, agent_request: AgentRequest | None = None
) -> PrivacyRequest:
    """Start preparing a copy of the consumer's data. Refused while another export is under way.

    ``agent_request``: the authorised agent's request this carries out (confirmed or verified).
    """
    user = User.objects.select_for_update().get(pk=user.pk)
    if (
        PrivacyRequest.objects.for_user(user)
        .filter(kind=RequestKind.EXPORT, status__in=[RequestStatus.RECEIVED, RequestStatus.PROCESSING])
        .exists()
    ):
        raise _already_active(RequestKind.EXPORT)
    request = _request_new(user=user, kind=RequestKind.EXPORT, language=language, agent_request=agent_request)
    request_email_on_commit(request=request, template="request_received")
    # robust: if the broker is down the request stays "received" and the periodic tick enqueues it again.
    transaction.on_commit(lambda: _export_enqueue(str(request.pk)), robust=True)
    return request


def cancel_token_make(request: PrivacyRequest) -> str:
    return signing.dumps({"r": str(request.pk), "n": request.cancel_nonce}, salt=CANCEL_SALT)


def cancel_url(request: PrivacyRequest) -> str:
    return settings.SITE_URL + reverse("requests:cancel_link", args=[cancel_token_make(request)])


def cancel_token_read(token: str) -> tuple[PrivacyRequest, bool]:
    """The request a cancellation link names, and whether the link is still the current one for it."""
    try:
        data = signing.loads(token, salt=CANCEL_SALT, max_age=timedelta(days=settings.DELETION_GRACE_DAYS))
    except signing.SignatureExpired as error:
        raise DomainError(
            _("This cancellation link has expired: the grace period it was sent for is over."), code="link_expired"
        ) from error
    except signing.BadSignature as error:
        raise DomainError(
            _("This cancellation link is not valid. Please use the link from the email exactly as it was sent."),
            code="link_invalid",
        ) from error
    request = PrivacyRequest.objects.select_related("user").filter(pk=data.get("r"), kind=RequestKind.DELETION).first()
    if request is None:
        raise DomainError(_("This cancellation link is not valid."), code="link_invalid")
    return request, bool(request.cancel_nonce) and secrets.compare_digest(request.cancel_nonce, str(data.get("n")))


@transaction.atomic
def privacy_request_deletion_create(
    *, user: User, language: str, agent_request: AgentRequest | None = None
) -> PrivacyRequest:
    """Schedule the deletion of the consumer's account after the grace period, and email a cancel link.

    ``agent_request``: the authorised agent's request this carries out; the grace period still starts now.
    """
    user = User.objects.select_for_update().get(pk=user.pk)
    if PrivacyRequest.objects.for_user(user).filter(kind=RequestKind.DELETION, status__in=ACTIVE_STATUSES).exists():
        raise _already_active(RequestKind.DELETION)
    request = _request_new(
        user=user,
        kind=RequestKind.DELETION,
        language=language,
        agent_request=agent_request,
        grace_ends_at=timezone.now() + timedelta(days=settings.DELETION_GRACE_DAYS),
        contact_email=user.email,
        cancel_nonce=secrets.token_hex(16),
    )
    request_email_on_commit(request=request, template="deletion_scheduled", extra={"cancel_url": cancel_url(request)})
    return request


@transaction.atomic
def privacy_request_cancel(*, request: PrivacyRequest, actor: Actor) -> PrivacyRequest:
    """Call off a deletion during its grace period. Repeating it changes nothing."""
    request = _locked(request.pk)
    if request.status == RequestStatus.CANCELLED:
        return request
    if not request.can_cancel:
        raise DomainError(
            _("This request can no longer be cancelled: the deletion has already started or the request is closed."),
            code="not_cancellable",
        )
    request.cancelled_at = timezone.now()
    request.contact_email = ""
    request.cancel_nonce = ""
    status_transition(
        request, RequestStatus.CANCELLED, actor=actor, fields=("cancelled_at", "contact_email", "cancel_nonce")
    )
    return request


@transaction.atomic
def privacy_request_export_start(*, request_id: Any) -> PrivacyRequest | None:
    """Claim an export for building; ``None`` when there is nothing (left) to build."""
    request = PrivacyRequest.objects.select_for_update().select_related("user").filter(pk=request_id).first()
    if request is None or request.kind != RequestKind.EXPORT or request.status not in ACTIVE_STATUSES:
        return None
    request.progress = 0
    if request.status == RequestStatus.RECEIVED:
        status_transition(request, RequestStatus.PROCESSING, actor=Actor.system("export"), fields=("progress",))
    else:
        # A worker died while building it; start again from scratch.
        request.save(update_fields=["progress"])
    return request


def privacy_request_progress_set(*, request_id: Any, progress: int) -> None:
    """Record how far an export has got (shown as a progress bar); not a state change, so no audit event."""
    PrivacyRequest.objects.filter(pk=request_id, status=RequestStatus.PROCESSING).update(
        progress=max(0, min(progress, 100))
    )


@transaction.atomic
def privacy_request_export_complete(*, request_id: Any, file_name: str, file_size: int) -> PrivacyRequest | None:
    """Attach the finished ZIP and tell the consumer. A request rejected meanwhile gets no file."""
    request = _locked(request_id)
    if request.status != RequestStatus.PROCESSING:
        transaction.on_commit(lambda: export_storage().delete(file_name))
        return None
    now = timezone.now()
    request.result_file.name = file_name
    request.file_size = file_size
    request.file_expires_at = now + timedelta(days=settings.EXPORT_TTL_DAYS)
    request.progress = 100
    request.completed_at = now
    status_transition(
        request,
        RequestStatus.COMPLETED,
        actor=Actor.system("export"),
        fields=("result_file", "file_size", "file_expires_at", "progress", "completed_at"),
        data={"file_size": file_size, "file_expires_at": request.file_expires_at},
    )
    request_email_on_commit(request=request, template="export_ready")
    return request


@transaction.atomic
def privacy_request_download_record(*, request: PrivacyRequest, user: User) -> PrivacyRequest:
    """Count and log one download of the export by its owner."""
    request = _locked(request.pk)
    request.download_count += 1
    request.last_downloaded_at = timezone.now()
    request.save(update_fields=["download_count", "last_downloaded_at"])
    event_record(
        actor=Actor.consumer(user),
        subject=request.user,
        action=AuditAction.PRIVACY_REQUEST_DOWNLOADED,
        target=request,
        data={"download": request.download_count},
    )
    return request


@transaction.atomic
def privacy_request_file_purge(*, request_id: Any, actor: Actor) -> bool:
    """Delete the export's file from its storage (after the transaction commits) and forget its name."""
    request = _locked(request_id)
    if not request.result_file:
        return False
    name = str(request.result_file.name)
    request.result_file.name = ""
    request.file_deleted_at = timezone.now()
    request.save(update_fields=["result_file", "file_deleted_at"])
    event_record(actor=actor, subject=request.user, action=AuditAction.PRIVACY_REQUEST_FILE_DELETED, target=request)
    transaction.on_commit(lambda: export_storage().delete(name))
    return True


def _extension_check(request: PrivacyRequest, months: int, days: int, reason: str) -> None:
    if not request.is_active:
        raise DomainError(_("Only an open request can be extended."), code="not_open")
    if not reason:
        raise DomainError(_("Give the reason for the extension; the consumer is told."), code="reason_required")
    if months < 0 or days < 0 or months + days == 0:
        raise DomainError(_("Extend by at least one month or one day."), code="nothing_to_extend")
    rule = rule_for(request.jurisdiction)
    previous = list(request.extensions.all())
    if rule.max_extensions is not None and len(previous) >= rule.max_extensions:
        raise DomainError(
            _("The deadline of this request has already been extended as far as the law allows."),
            code="extension_limit",
        )
    total_months = months + sum(e.months for e in previous)
    total_days = days + sum(e.days for e in previous)
    if total_months > rule.max_extension_months or total_days > rule.max_extension_days:
        raise DomainError(
            _("Under %(law)s the deadline can be extended by at most %(months)d months and %(days)d days in total.")
            % {
                "law": request.get_jurisdiction_display(),
                "months": rule.max_extension_months,
                "days": rule.max_extension_days,
            },
            code="extension_limit",
        )


@transaction.atomic
def privacy_request_extend(
    *, request: PrivacyRequest, months: int, days: int, reason: str, staff: User
) -> PrivacyRequestExtension:
    """Extend the deadline within what the request's privacy law allows; the consumer is emailed the reason."""
    request = _locked(request.pk)
    reason = reason.strip()
    _extension_check(request, months, days, reason)
    previous_due = request.due_at
    extensions = list(request.extensions.all())
    request.due_at = due_at_compute(
        received_at=request.created_at,
        jurisdiction=request.jurisdiction,
        extra_months=months + sum(e.months for e in extensions),
        extra_days=days + sum(e.days for e in extensions),
    )
    request.escalated_at = None
    request.updated_at = timezone.now()
    request.save(update_fields=["due_at", "escalated_at", "updated_at"])
    extension = PrivacyRequestExtension.objects.create(
        request=request,
        months=months,
        days=days,
        reason=reason,
        by=staff,
        previous_due_at=previous_due,
        new_due_at=request.due_at,
    )
    event_record(
        actor=Actor.staff(staff),
        subject=request.user,
        action=AuditAction.PRIVACY_REQUEST_EXTENDED,
        target=request,
        data={"months": months, "days": days, "previous_due_at": previous_due, "due_at": request.due_at},
    )
    if address := _consumer_address(request):
        request_email_on_commit(request=request, template="request_extended", to=address, extra={"reason": reason})
    return extension


@transaction.atomic
def privacy_request_reject(*, request: PrivacyRequest, reason: str, staff: User) -> PrivacyRequest:
    """Refuse a request that has not been carried out yet; the consumer is emailed the reason."""
    request = _locked(request.pk)
    reason = reason.strip()
    if request.status not in (RequestStatus.RECEIVED, RequestStatus.PROCESSING):
        raise DomainError(_("Only a request that has not been carried out yet can be rejected."), code="not_rejectable")
    if not reason:
        raise DomainError(_("Give the reason for the rejection; the consumer is told."), code="reason_required")
    address = _consumer_address(request)
    request.rejected_at = timezone.now()
    request.rejection_reason = reason
    request.contact_email = ""
    request.cancel_nonce = ""
    status_transition(
        request,
        RequestStatus.REJECTED,
        actor=Actor.staff(staff),
        fields=("rejected_at", "rejection_reason", "contact_email", "cancel_nonce"),
    )
    if address:
        request_email_on_commit(request=request, template="request_rejected", to=address, extra={"reason": reason})
    return request


@transaction.atomic
def privacy_request_escalate(*, request_id: Any) -> bool:
    """Flag an open request whose due date has passed and alert staff. Done once per due date."""
    request = _locked(request_id)
    now = timezone.now()
    if not request.is_active or request.due_at > now or request.escalated_at is not None:
        return False
    request.escalated_at = now
    request.save(update_fields=["escalated_at"])
    waiting = [t.partner.slug for t in request.partner_tasks.select_related("partner") if not t.is_done]
    event_record(
        actor=Actor.system("deadline"),
        subject=request.user,
        action=AuditAction.PRIVACY_REQUEST_ESCALATED,
        target=request,
        data={"kind": request.kind, "status": request.status, "due_at": request.due_at, "waiting_for": waiting},
    )
    staff_email_on_commit(request=request, template="request_escalated", extra={"waiting_for": waiting})
    return True
