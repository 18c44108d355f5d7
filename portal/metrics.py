"""Prometheus metrics the portal counts, defined once per process (prometheus-client's default registry)."""

from prometheus_client import Counter

THROTTLE_CACHE_ERRORS = Counter(
    "portal_throttle_cache_errors_total",
    "Rate-limit counts that could not reach the shared cache, so the request was let through uncounted.",
    ["scope"],
)
