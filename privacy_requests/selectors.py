"""Reads for the privacy-request pages."""

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from consents.models import Consent, ConsentStatus, Partner
from portal.models import User
from privacy_requests.deadlines import DeadlineRule, rule_for
from privacy_requests.models import ACTIVE_STATUSES, PrivacyRequest, RequestKind, RequestStatus


@dataclass(frozen=True)
class DeletionConsequences:
    consents: list[Consent]
    partners: list[Partner]
    grace_days: int
    proof_retention_days: int


def deletion_consequences(user: User) -> DeletionConsequences:
    """What a deletion would do: the consents that end and the partners that are told."""
    live = [ConsentStatus.GRANTED, ConsentStatus.RECONSENT_REQUIRED]
    consents = list(
        Consent.objects.filter(user=user, status__in=live).select_related("purpose").order_by("purpose__name")
    )
    partners = list(
        Partner.objects.filter(
            Q(subjects__user=user)
            | Q(
                sharings__is_active=True,
                sharings__purpose__consents__user=user,
                sharings__purpose__consents__status__in=live,
            )
        )
        .distinct()
        .order_by("name")
    )
    return DeletionConsequences(
        consents=consents,
        partners=partners,
        grace_days=settings.DELETION_GRACE_DAYS,
        proof_retention_days=settings.CONSENT_PROOF_RETENTION_DAYS,
    )


@dataclass(frozen=True)
class RequestsOverview:
    requests: list[PrivacyRequest]
    active_export: PrivacyRequest | None
    active_deletion: PrivacyRequest | None
    rule: DeadlineRule


def request_active(user: User, kind: str) -> PrivacyRequest | None:
    """The consumer's export being prepared, or deletion under way, if there is one."""
    statuses = ACTIVE_STATUSES if kind == RequestKind.DELETION else (RequestStatus.RECEIVED, RequestStatus.PROCESSING)
    return PrivacyRequest.objects.for_user(user).filter(kind=kind, status__in=statuses).first()


def requests_overview(user: User, limit: int | None = None) -> RequestsOverview:
    """The consumer's requests, newest first, and the ones still under way."""
    return RequestsOverview(
        requests=list(PrivacyRequest.objects.for_user(user).order_by("-created_at")[:limit]),
        active_export=request_active(user, RequestKind.EXPORT),
        active_deletion=request_active(user, RequestKind.DELETION),
        rule=rule_for(user.jurisdiction),
    )
