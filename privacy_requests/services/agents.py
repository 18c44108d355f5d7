"""Authorised agents (CCPA, Cal. Code Regs. tit. 11, § 7063): an agent's request, the consumer's answer, staff's check.

The public form only stores the submission and queues ``agent_request_dispatch``; whether an account
exists for the address is decided in the worker, so the agent's page and its timing are the same
either way. Nothing happens for the consumer until they confirm through the emailed link, signed in
as themselves, or staff verify the agent's power of attorney; the request then goes through the
ordinary privacy-request services (``privacy_request_export_create``, ``privacy_request_deletion_create``)
or the sale/sharing opt-out GPC uses (``sale_sharing_opt_out``), and keeps the agent's date of receipt.
"""

import secrets
from datetime import timedelta
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core import signing
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import AuditAction
from audit.services import Actor, event_record
from consents.errors import DomainError
from consents.models import ConsentMethod
from consents.services.consents import sale_sharing_opt_out
from portal import emails
from portal.models import User
from portal.timezones import user_zone
from privacy_requests.models import AgentRequest, AgentRequestKind, AgentRequestStatus
from privacy_requests.services.requests import (
    AGENT_ACTOR,
    privacy_request_deletion_create,
    privacy_request_export_create,
)
from privacy_requests.storage import export_storage

CONFIRM_SALT = "privacy_requests.agents.confirm"


def agent_document_store(document: UploadedFile) -> str:
    """Save the signed permission in the private ``exports`` storage under a random name; its key."""
    extension = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}[str(document.content_type)]
    return export_storage().save(f"agents/{secrets.token_hex(16)}.{extension}", document)


def agent_request_submit(
    *,
    kind: str,
    consumer_email: str,
    agent_name: str,
    agent_email: str,
    agent_organisation: str,
    document: UploadedFile,
    language: str,
) -> AgentRequest:
    """Record an agent's request and queue the look-up of the consumer; the same work whatever the address."""
    name = agent_document_store(document)
    try:
        with transaction.atomic():
            agent_request = AgentRequest.objects.create(
                kind=kind,
                consumer_email=consumer_email.strip(),
                agent_name=agent_name.strip(),
                agent_email=agent_email.strip(),
                agent_organisation=agent_organisation.strip(),
                document_name=name,
                document_type=str(document.content_type),
                document_size=document.size or 0,
                language=language,
            )
            transaction.on_commit(lambda: _dispatch_enqueue(str(agent_request.pk)), robust=True)
    except Exception:
        export_storage().delete(name)
        raise
    return agent_request


def _dispatch_enqueue(agent_request_id: str) -> None:
    from privacy_requests.tasks import agent_request_dispatch

    agent_request_dispatch.delay(agent_request_id)


def _consumer_for(address: str) -> User | None:
    """The active consumer whose verified address this is; nobody for an unverified or staff address."""
    found = EmailAddress.objects.filter(email__iexact=address, verified=True).select_related("user").first()
    if found is None or not found.user.is_active or found.user.is_staff:
        return None
    user: User = found.user
    return user


def confirm_token_make(agent_request: AgentRequest) -> str:
    return signing.dumps({"a": str(agent_request.pk), "n": agent_request.confirm_nonce}, salt=CONFIRM_SALT)


def confirm_url(agent_request: AgentRequest) -> str:
    return settings.SITE_URL + reverse("requests:agent_confirm", args=[confirm_token_make(agent_request)])


@transaction.atomic
def agent_request_dispatch(*, agent_request_id: Any) -> AgentRequest | None:
    """Match the request to a consumer and email them the confirmation link, or close it and drop the document.

    Idempotent: a request already dispatched is left alone.
    """
    agent_request = AgentRequest.objects.select_for_update().filter(pk=agent_request_id).first()
    if agent_request is None or agent_request.status != AgentRequestStatus.RECEIVED:
        return None
    user = _consumer_for(agent_request.consumer_email)
    if user is None:
        # Nobody to act for: keep no copy of the agent's document.
        name = agent_request.document_name
        agent_request.status = AgentRequestStatus.NO_ACCOUNT
        agent_request.document_name = ""
        agent_request.save(update_fields=["status", "document_name"])
        transaction.on_commit(lambda: export_storage().delete(name))
        return agent_request
    agent_request.user = user
    agent_request.status = AgentRequestStatus.AWAITING_CONSUMER
    agent_request.confirm_nonce = secrets.token_hex(16)
    agent_request.save(update_fields=["user", "status", "confirm_nonce"])
    _event(agent_request, actor=Actor.system(AGENT_ACTOR), step="received", note=agent_request.agent_label)
    emails.send_mail_on_commit(
        "privacy_requests/email/agent_confirm",
        to=user.email,
        context={
            "agent_request": agent_request,
            "confirm_url": confirm_url(agent_request),
            "valid_days": settings.AGENT_REQUEST_CONFIRM_DAYS,
        },
        language=user.language or agent_request.language,
        time_zone=user_zone(user),
    )
    return agent_request


def _event(agent_request: AgentRequest, *, actor: Actor, step: str, note: str = "") -> None:
    # The privacy-request actions, with the agent's step in the data (read by the activity page).
    action = {
        "declined": AuditAction.PRIVACY_REQUEST_CANCELLED,
        "rejected": AuditAction.PRIVACY_REQUEST_REJECTED,
        "confirmed": AuditAction.PRIVACY_REQUEST_PROCESSING,
        "verified": AuditAction.PRIVACY_REQUEST_PROCESSING,
    }.get(step, AuditAction.PRIVACY_REQUEST_RECEIVED)
    event_record(
        actor=actor,
        subject=agent_request.user,
        action=action,
        target=agent_request,
        data={"kind": agent_request.kind, "agent_request": str(agent_request.pk), "agent_step": step},
        note=note,
    )


def confirm_token_read(token: str) -> tuple[AgentRequest, str]:
    """The agent request a confirmation link names, and the nonce it carries."""
    try:
        data = signing.loads(token, salt=CONFIRM_SALT, max_age=timedelta(days=settings.AGENT_REQUEST_CONFIRM_DAYS))
    except signing.SignatureExpired as error:
        raise DomainError(
            _("This link has expired. If someone is acting for you, ask them to send the request again."),
            code="link_expired",
        ) from error
    except signing.BadSignature as error:
        raise DomainError(
            _("This link is not valid. Please use the link from the email exactly as it was sent."),
            code="link_invalid",
        ) from error
    agent_request = AgentRequest.objects.select_related("user").filter(pk=data.get("a")).first()
    if agent_request is None or agent_request.user is None:
        raise DomainError(_("This link is not valid."), code="link_invalid")
    return agent_request, str(data.get("n"))


def _locked_open(agent_request: AgentRequest, nonce: str | None) -> AgentRequest:
    # Not joined to the consumer: PostgreSQL cannot lock the nullable side of an outer join.
    locked = AgentRequest.objects.select_for_update().get(pk=agent_request.pk)
    current = nonce is None or (bool(locked.confirm_nonce) and secrets.compare_digest(locked.confirm_nonce, nonce))
    if not locked.is_open or not current:
        raise DomainError(_("This request has already been answered."), code="already_answered")
    return locked


def _carry_out(agent_request: AgentRequest, *, actor: Actor, language: str) -> None:
    user = agent_request.user
    assert user is not None
    if agent_request.kind == AgentRequestKind.EXPORT:
        agent_request.privacy_request = privacy_request_export_create(
            user=user, language=language, agent_request=agent_request
        )
    elif agent_request.kind == AgentRequestKind.DELETION:
        agent_request.privacy_request = privacy_request_deletion_create(
            user=user, language=language, agent_request=agent_request
        )
    else:
        # An opt-out takes effect at once, like the consumer's own withdrawal on the site.
        sale_sharing_opt_out(user=user, actor=actor, method=ConsentMethod.WEB)


def _decide(agent_request: AgentRequest, status: str, *, staff: User | None = None) -> None:
    agent_request.status = status
    agent_request.decided_at = timezone.now()
    agent_request.decided_by = staff
    agent_request.confirm_nonce = ""
    agent_request.save(update_fields=["status", "decided_at", "decided_by", "confirm_nonce", "privacy_request"])


@transaction.atomic
def agent_request_confirm(*, agent_request: AgentRequest, user: User, nonce: str, language: str) -> AgentRequest:
    """The consumer, signed in as themselves, confirms their agent's request: it is carried out now."""
    agent_request = _locked_open(agent_request, nonce)
    if agent_request.user_id != user.pk:
        raise DomainError(_("This request was made for someone else."), code="wrong_consumer")
    _event(agent_request, actor=Actor.consumer(user), step="confirmed")
    _carry_out(agent_request, actor=Actor.consumer(user), language=language)
    _decide(agent_request, AgentRequestStatus.CONFIRMED)
    return agent_request


@transaction.atomic
def agent_request_decline(*, agent_request: AgentRequest, user: User, nonce: str) -> AgentRequest:
    """The consumer says they did not authorise this agent: the request is closed, nothing is done."""
    agent_request = _locked_open(agent_request, nonce)
    if agent_request.user_id != user.pk:
        raise DomainError(_("This request was made for someone else."), code="wrong_consumer")
    _decide(agent_request, AgentRequestStatus.DECLINED)
    _event(agent_request, actor=Actor.consumer(user), step="declined")
    return agent_request


@transaction.atomic
def agent_request_reject(*, agent_request: AgentRequest, staff: User, note: str) -> AgentRequest:
    """Staff found the agent's permission wanting (unsigned, another person's, expired): closed, nothing done.

    The consumer's confirmation link stops working; the consumer's activity says staff did not
    accept the agent's permission, with the note kept beside the sealed event.
    """
    note = note.strip()
    if not note:
        raise DomainError(_("Say why the agent's authority was not accepted."), code="note_required")
    if not staff.has_perm("privacy_requests.verify_agentrequest"):
        raise DomainError(_("You may not decide on authorised agents."), code="forbidden")
    agent_request = _locked_open(agent_request, None)
    _decide(agent_request, AgentRequestStatus.REJECTED, staff=staff)
    _event(agent_request, actor=Actor.staff(staff), step="rejected", note=note)
    return agent_request


@transaction.atomic
def agent_request_verify(*, agent_request: AgentRequest, staff: User, note: str) -> AgentRequest:
    """Staff checked the agent's power of attorney: the request is carried out without the consumer's confirmation."""
    note = note.strip()
    if not note:
        raise DomainError(_("Say how the agent's authority was verified."), code="note_required")
    if not staff.has_perm("privacy_requests.verify_agentrequest"):
        raise DomainError(_("You may not verify authorised agents."), code="forbidden")
    agent_request = _locked_open(agent_request, None)
    _event(agent_request, actor=Actor.staff(staff), step="verified", note=note)
    _carry_out(agent_request, actor=Actor.staff(staff), language=agent_request.language)
    _decide(agent_request, AgentRequestStatus.VERIFIED, staff=staff)
    return agent_request


# Agents' requests that came to nothing: nobody to act for, or the consumer or staff said no.
CAME_TO_NOTHING = (AgentRequestStatus.NO_ACCOUNT, AgentRequestStatus.DECLINED, AgentRequestStatus.REJECTED)


@transaction.atomic
def agent_requests_forget(*, now: Any) -> int:
    """Forget who asked and for whom, in agents' requests that came to nothing, after the contact retention.

    After ``PRIVACY_REQUEST_CONTACT_RETENTION_DAYS`` from receipt the agent's name, address and
    organisation, the address typed for the consumer and any stored permission are erased; the
    row (kind, dates, outcome) stays for the figures. A request that was carried out keeps its
    agent: the consumer's record says who acted for them. Returns the number of requests forgotten.
    """
    cutoff = now - timedelta(days=settings.PRIVACY_REQUEST_CONTACT_RETENTION_DAYS)
    stale = AgentRequest.objects.filter(status__in=CAME_TO_NOTHING, received_at__lte=cutoff).exclude(agent_email="")
    documents = [name for name in stale.values_list("document_name", flat=True) if name]
    forgotten = stale.update(consumer_email="", agent_name="", agent_email="", agent_organisation="", document_name="")
    transaction.on_commit(lambda: _documents_delete(documents))
    return forgotten


def _documents_delete(names: list[str]) -> None:
    storage = export_storage()
    for name in names:
        storage.delete(name)
