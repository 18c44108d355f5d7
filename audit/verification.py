"""Full verification of the audit log's hash chains, and the record of its last result.

The result goes to the cache (shared by every process in production), cheap to read at each
``/metrics`` scrape and worthless once stale, which is what its age says. An evicted or never
written record reads as "never verified".
"""

from dataclasses import dataclass
from datetime import datetime

from django.core.cache import cache
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.selectors import ChainBreak, audit_chain_breaks

CACHE_KEY = "audit:chain-verification"


@dataclass(frozen=True)
class AuditVerification:
    at: datetime
    breaks: int


def audit_verify_all() -> list[ChainBreak]:
    """Verify every chain (one pass over the log), record the outcome, and return the breaks found."""
    breaks = list(audit_chain_breaks())
    audit_verification_record(breaks=len(breaks))
    return breaks


def audit_verification_record(*, breaks: int, at: datetime | None = None) -> None:
    """Remember the outcome of a full verification (no expiry: its age is part of what it says)."""
    at = at or timezone.now()
    cache.set(CACHE_KEY, {"at": at.isoformat(), "breaks": breaks}, timeout=None)


def audit_verification_last() -> AuditVerification | None:
    """The last full verification's time and number of broken chains, or ``None`` if none is on record."""
    value = cache.get(CACHE_KEY)
    if not isinstance(value, dict) or (at := parse_datetime(str(value.get("at", "")))) is None:
        return None
    return AuditVerification(at=at, breaks=int(value.get("breaks", 0)))
