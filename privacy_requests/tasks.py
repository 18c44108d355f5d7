"""Celery tasks for privacy requests: each takes ids, loads, calls a service, and is safe to run twice.

The task names keep the package the tasks were first defined in (``portal.requests``), so that tasks
already queued and the beat schedule keep finding them.
"""

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from audit.services import Actor
from privacy_requests.models import AgentRequest, AgentRequestStatus, PrivacyRequest, RequestKind, RequestStatus
from privacy_requests.retention import late_free_text_scrub, privacy_request_retention_apply
from privacy_requests.services.agents import agent_request_dispatch as agent_request_dispatch_service
from privacy_requests.services.agents import agent_requests_forget
from privacy_requests.services.deletion import (
    consent_proofs_purge,
    privacy_request_acks_sync,
    privacy_request_deletion_execute,
)
from privacy_requests.services.export import export_build
from privacy_requests.services.requests import privacy_request_escalate, privacy_request_file_purge

logger = logging.getLogger(__name__)

# An export still "received" this long after it was made lost its task on the way (broker down).
EXPORT_REQUEUE_AFTER = timedelta(minutes=2)


@shared_task(
    name="portal.requests.tasks.privacy_export_build", autoretry_for=(OSError,), max_retries=3, retry_backoff=30
)
def privacy_export_build(request_id: str) -> None:
    export_build(request_id=request_id)


@shared_task(name="portal.requests.tasks.privacy_deletion_execute")
def privacy_deletion_execute(request_id: str) -> None:
    privacy_request_deletion_execute(request_id=request_id)


@shared_task(name="portal.requests.tasks.privacy_requests_tick")
def privacy_requests_tick() -> None:
    """Every minute: start deletions whose grace ended, collect acknowledgements, forget contact addresses
    kept past their retention (and the agents of agents' requests that came to nothing), erase partners'
    late words about deleted accounts, escalate overdue requests."""
    now = timezone.now()
    for request_id in PrivacyRequest.objects.deletions_due(now).values_list("pk", flat=True):
        privacy_deletion_execute.delay(str(request_id))
    stale_exports = PrivacyRequest.objects.filter(
        kind=RequestKind.EXPORT, status=RequestStatus.RECEIVED, created_at__lte=now - EXPORT_REQUEUE_AFTER
    )
    for request_id in stale_exports.values_list("pk", flat=True):
        privacy_export_build.delay(str(request_id))
    waiting = PrivacyRequest.objects.filter(status=RequestStatus.WAITING_PARTNERS).values_list("pk", flat=True)
    for request_id in waiting:
        try:
            privacy_request_acks_sync(request_id=request_id)
        except Exception:
            # One broken request must not hold up the others; the next tick tries it again.
            logger.exception("privacy request %s: collecting acknowledgements failed", request_id)
    for request_id in PrivacyRequest.objects.contacts_expired(now).values_list("pk", flat=True):
        try:
            privacy_request_retention_apply(request_id=request_id)
        except Exception:
            logger.exception("privacy request %s: applying the contact retention failed", request_id)
    try:
        late_free_text_scrub()
    except Exception:
        logger.exception("erasing partners' late words about deleted accounts failed")
    try:
        agent_requests_forget(now=now)
    except Exception:
        logger.exception("forgetting the agents of requests that came to nothing failed")
    overdue = PrivacyRequest.objects.overdue(now).filter(escalated_at__isnull=True).values_list("pk", flat=True)
    for request_id in overdue:
        try:
            privacy_request_escalate(request_id=request_id)
        except Exception:
            logger.exception("privacy request %s: escalation failed", request_id)


@shared_task(name="portal.requests.tasks.privacy_exports_purge_expired")
def privacy_exports_purge_expired() -> int:
    """Delete export files whose download period is over."""
    purged = 0
    for request_id in PrivacyRequest.objects.files_expired().values_list("pk", flat=True):
        purged += privacy_request_file_purge(request_id=request_id, actor=Actor.system("export expiry"))
    return purged


@shared_task(name="portal.requests.tasks.consent_proofs_purge_expired")
def consent_proofs_purge_expired() -> int:
    return consent_proofs_purge()


@shared_task(name="privacy_requests.tasks.agent_request_dispatch")
def agent_request_dispatch(agent_request_id: str) -> None:
    agent_request_dispatch_service(agent_request_id=agent_request_id)


@shared_task(name="privacy_requests.tasks.agent_requests_dispatch_pending")
def agent_requests_dispatch_pending() -> int:
    """Dispatch agents' requests whose queued dispatch never ran (the broker was down when they came).

    Only those older than two minutes, so the normal queued dispatch goes first; dispatching is
    idempotent either way. Returns the number dispatched.
    """
    stale = AgentRequest.objects.filter(
        status=AgentRequestStatus.RECEIVED, received_at__lte=timezone.now() - timedelta(minutes=2)
    )
    dispatched = 0
    for pk in list(stale.order_by("received_at").values_list("pk", flat=True)[:100]):
        try:
            if agent_request_dispatch_service(agent_request_id=pk) is not None:
                dispatched += 1
        except Exception:
            logger.exception("could not dispatch agent request %s; will retry on the next run", pk)
    return dispatched
