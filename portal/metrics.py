"""What ``/metrics`` shows: request metrics counted in each process, and business figures read from the database.

Request metrics live in prometheus-client's default registry. Under gunicorn (several worker
processes) ``gunicorn.conf.py`` turns on prometheus-client's multiprocess mode: every process
writes its samples to files under ``PROMETHEUS_MULTIPROC_DIR`` and a scrape, answered by any one
worker, adds them all up. The business figures (``BusinessCollector``) are computed at scrape time
from the database with a fixed handful of aggregate queries, so they are the same whichever
process answers.
"""

import logging
import os
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from django.db import DatabaseError
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from audit.models import AccessEvent, AccessVerdict
from audit.verification import audit_verification_last
from consents.models import (
    DeliveryAttempt,
    DeliveryOutcome,
    DeliveryStatus,
    EventType,
    OutboxEvent,
    Partner,
    PartnerStatus,
)
from privacy_requests.models import PrivacyRequest, RequestKind

logger = logging.getLogger(__name__)

THROTTLE_CACHE_ERRORS = Counter(
    "portal_throttle_cache_errors_total",
    "Rate-limit counts that could not reach the shared cache, so the request was let through uncounted.",
    ["scope"],
)

REQUEST_DURATION = Histogram(
    "portal_http_request_duration_seconds",
    "Time to answer a request, by URL pattern (never the path), method and status class.",
    ["route", "method", "status"],
)

# Revocation → partner acknowledgement, in seconds: from seconds (a webhook acted on at once) to a week.
ACK_LATENCY_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600)
# The windows the business figures look back over.
ACK_WINDOW = timedelta(hours=24)
ATTEMPT_WINDOW = timedelta(hours=1)
# The delivery-outcome figure reads at most this many of the latest attempts (by primary key, so
# the query costs the same however long the attempt history grows).
ATTEMPT_SAMPLE = 10_000
FLAGGED_WINDOW = timedelta(hours=24)
DUE_SOON = timedelta(days=7)


class _DefaultRegistry(Collector):
    """This process's own metrics (prometheus-client's default registry) inside a scrape's registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class BusinessCollector(Collector):
    """Gauges about the portal's obligations, computed from the database at each scrape.

    Six queries whatever the data: active partners, waiting and dead outbox events per partner,
    the latest delivery attempts' outcomes, acknowledged revocations of the last day, open privacy
    requests by deadline, flagged accesses of the last day. The audit chain's last verification is
    read from the cache, where the verification records it (``audit.services``).
    """

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        try:
            families = [
                *self._outbox(now),
                self._attempts(now),
                self._ack_latency(now),
                *self._privacy_requests(now),
                self._flagged_accesses(now),
            ]
        except DatabaseError:
            logger.warning("business metrics: the database could not be read", exc_info=True)
            families = []
        yield from families
        yield GaugeMetricFamily(
            "portal_business_metrics_ok",
            "1 if the business figures below could be read from the database at this scrape, 0 if not.",
            value=1 if families else 0,
        )
        yield from self._audit_verification(now)

    def _outbox(self, now: datetime) -> list[Metric]:
        waiting = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
        # Every active partner gets a sample, 0 when nothing waits, so an alert never sees a series vanish.
        slugs = set(Partner.objects.filter(status=PartnerStatus.ACTIVE).values_list("slug", flat=True))
        waiting_counts: dict[str, int] = {}
        dead_counts: dict[str, int] = {}
        oldest_ages: dict[str, float] = {}
        rows = (
            OutboxEvent.objects.filter(status__in=[*waiting, DeliveryStatus.DEAD])
            .values_list("partner__slug")
            .annotate(
                backlog=Count("pk", filter=Q(status__in=waiting)),
                dead=Count("pk", filter=Q(status=DeliveryStatus.DEAD)),
                oldest=Min("created_at", filter=Q(status__in=waiting)),
            )
            .order_by()
        )
        for slug, backlog_count, dead_count, oldest_at in rows:
            slugs.add(slug)
            waiting_counts[slug], dead_counts[slug] = backlog_count, dead_count
            if oldest_at is not None:
                oldest_ages[slug] = max(0.0, (now - oldest_at).total_seconds())
        backlog = GaugeMetricFamily(
            "portal_outbox_backlog_events",
            "Outbox events waiting for delivery (pending or retrying), per partner.",
            labels=["partner"],
        )
        oldest = GaugeMetricFamily(
            "portal_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox event still waiting for delivery, per partner (0 when none waits).",
            labels=["partner"],
        )
        dead = GaugeMetricFamily(
            "portal_outbox_dead_letters",
            "Outbox events that exhausted their delivery attempts and wait for staff to re-drive them, per partner.",
            labels=["partner"],
        )
        for slug in sorted(slugs):
            backlog.add_metric([slug], waiting_counts.get(slug, 0))
            oldest.add_metric([slug], oldest_ages.get(slug, 0.0))
            dead.add_metric([slug], dead_counts.get(slug, 0))
        return [backlog, oldest, dead]

    def _attempts(self, now: datetime) -> Metric:
        latest = DeliveryAttempt.objects.order_by("-pk").values("pk")[:ATTEMPT_SAMPLE]
        counts = dict(
            DeliveryAttempt.objects.filter(pk__in=latest, attempted_at__gte=now - ATTEMPT_WINDOW)
            .values_list("outcome")
            .annotate(n=Count("pk"))
            .order_by()
        )
        family = GaugeMetricFamily(
            "portal_webhook_attempts_last_hour",
            f"Webhook delivery attempts of the last hour by outcome (of the latest {ATTEMPT_SAMPLE:,}).",
            labels=["outcome"],
        )
        for outcome in DeliveryOutcome.values:
            family.add_metric([outcome], counts.get(outcome, 0))
        return family

    def _ack_latency(self, now: datetime) -> Metric:
        pairs = OutboxEvent.objects.filter(
            event_type=EventType.CONSENT_REVOKED, acked_at__gte=now - ACK_WINDOW
        ).values_list("created_at", "acked_at")
        latencies = [max(0.0, (acked - created).total_seconds()) for created, acked in pairs if acked is not None]
        buckets = [(str(float(bound)), sum(1 for x in latencies if x <= bound)) for bound in ACK_LATENCY_BUCKETS]
        return HistogramMetricFamily(
            "portal_revocation_ack_latency_seconds",
            "From a revocation to the partner's acknowledgement, for revocations acknowledged in the last 24 hours.",
            buckets=[*buckets, ("+Inf", len(latencies))],
            sum_value=sum(latencies),
        )

    def _privacy_requests(self, now: datetime) -> list[Metric]:
        rows = {
            kind: (due_soon_count, overdue_count)
            for kind, due_soon_count, overdue_count in PrivacyRequest.objects.active()
            .values_list("kind")
            .annotate(
                due_soon=Count("pk", filter=Q(due_at__gt=now, due_at__lte=now + DUE_SOON)),
                overdue=Count("pk", filter=Q(due_at__lte=now)),
            )
            .order_by()
        }
        due_soon = GaugeMetricFamily(
            "portal_privacy_requests_due_7d",
            "Open privacy requests whose legal deadline falls in the next 7 days, by kind.",
            labels=["kind"],
        )
        overdue = GaugeMetricFamily(
            "portal_privacy_requests_overdue",
            "Open privacy requests past their legal deadline, by kind.",
            labels=["kind"],
        )
        for kind in RequestKind.values:
            due_soon_count, overdue_count = rows.get(kind, (0, 0))
            due_soon.add_metric([kind], due_soon_count)
            overdue.add_metric([kind], overdue_count)
        return [due_soon, overdue]

    def _flagged_accesses(self, now: datetime) -> Metric:
        flagged = [v for v in AccessVerdict.values if v != AccessVerdict.COVERED]
        counts = dict(
            AccessEvent.objects.filter(verdict__in=flagged, received_at__gte=now - FLAGGED_WINDOW)
            .values_list("verdict")
            .annotate(n=Count("pk"))
            .order_by()
        )
        family = GaugeMetricFamily(
            "portal_flagged_accesses_24h",
            "Data accesses reported in the last 24 hours that no consent covered, by verdict.",
            labels=["verdict"],
        )
        for verdict in flagged:
            family.add_metric([verdict], counts.get(verdict, 0))
        return family

    def _audit_verification(self, now: datetime) -> Iterator[Metric]:
        try:
            last = audit_verification_last()
        except Exception:
            # The cache (Redis) is down: the other figures still go out; these read as "never verified".
            logger.warning("business metrics: the audit verification record could not be read", exc_info=True)
            return
        if last is None:
            # Never verified (or the record was evicted from the cache): no sample, so "absent" alerts fire.
            return
        yield GaugeMetricFamily(
            "portal_audit_chain_ok",
            "1 if the last full verification of the audit log's hash chains found them intact, 0 if not.",
            value=1 if last.breaks == 0 else 0,
        )
        yield GaugeMetricFamily(
            "portal_audit_chain_breaks",
            "Damaged chains the last full verification of the audit log found.",
            value=last.breaks,
        )
        yield GaugeMetricFamily(
            "portal_audit_chain_verification_age_seconds",
            "Time since the last full verification of the audit log's hash chains.",
            value=max(0.0, (now - last.at).total_seconds()),
        )


def scrape_registry() -> CollectorRegistry:
    """A registry for one scrape: every process's request metrics and the business figures."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_DefaultRegistry())
    registry.register(BusinessCollector())
    return registry
