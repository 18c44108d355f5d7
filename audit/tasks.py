"""Periodic verification of the audit log."""

import logging

from celery import shared_task
from django.conf import settings

from audit.partitions import access_event_partitions_create, access_events_retention_apply
from audit.verification import audit_verify_all

logger = logging.getLogger(__name__)


@shared_task(name="audit.tasks.audit_chains_verify", ignore_result=True)
def audit_chains_verify() -> int:
    """Verify every hash chain and record the result (``/metrics`` reports it); returns the breaks found.

    Read-only apart from the record, so running it twice is harmless.
    """
    breaks = audit_verify_all()
    for chain_break in breaks:
        logger.error("audit log damaged: %s", chain_break)
    return len(breaks)


@shared_task(name="audit.tasks.access_event_partitions_maintain", ignore_result=True)
def access_event_partitions_maintain() -> int:
    """Create the access log's partitions ahead and apply its retention; returns the events deleted.

    Both steps are idempotent and serialised by a database lock, so a late second tick does nothing.
    """
    created = access_event_partitions_create(months_ahead=settings.ACCESS_EVENT_PARTITIONS_AHEAD)
    if created:
        logger.info("access event partitions created: %s", ", ".join(created))
    return access_events_retention_apply()
