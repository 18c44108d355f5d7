"""Authentication, scoping and throttling shared by every partner API view.

Every authenticated endpoint subclasses ``PartnerApi`` and names its ``required_scopes``; inside
the view, ``partner_token(request).partner_id`` (cheap) or ``request.partner`` (loaded on use)
identify the caller, and every read and write must be scoped to it.

A request carries an OAuth 2.0 bearer token issued by django-oauth-toolkit to a partner
credential (client-credentials grant). ``PartnerAuthentication`` resolves it to the partner and
sets ``request.partner``; ``PartnerScopes`` enforces the view's ``required_scopes``;
``PartnerRateThrottle`` limits requests per partner.

The first time a process sees a token it is validated by django-oauth-toolkit itself (expiry,
scopes, audience, application). What that resolves to — which partner, which scopes, until when —
is then kept in process memory for a few seconds; but on every request one query of three
primary-key lookups checks that the token still exists (revocation deletes it), that its
credential is not revoked and that the partner is not suspended, so none of those can be outrun
by the cache.

The single consent check, the API's hottest path, saves that round trip: its view declares
``live_state_combined``, authentication then leaves the live state to the view's one statement
(``consent_state_live`` here, which refuses exactly as authentication would, before any consent is
used), and ``PartnerApi`` refuses to send any answer of such a view that did not go through it.
"""

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from oauth2_provider.models import AccessToken
from redis.exceptions import RedisError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from consents.api.problems import InsufficientScope, InvalidToken, PartnerSuspended
from consents.api.selectors import ConsentState, LiveState, consent_state_live, metadata_cache_clear
from consents.models import Partner, PartnerCredential
from portal.metrics import THROTTLE_CACHE_ERRORS
from portal.prepared import fetch_one

logger = logging.getLogger(__name__)

GRANT_CACHE_SECONDS = 5.0
GRANT_CACHE_MAX = 10_000


@dataclass(frozen=True)
class PartnerToken:
    """What a valid bearer token stands for; ``request.auth`` on every authenticated API request."""

    token_id: int
    partner_id: int
    credential_id: int
    scopes: frozenset[str]
    expires: datetime


_grants: dict[str, tuple[float, PartnerToken]] = {}

# Three primary-key lookups in one statement: cheap to plan and to run on every request.
_LIVE_STATE_SQL = (
    f"SELECT (SELECT id FROM {AccessToken._meta.db_table} WHERE id = %s),"  # noqa: S608 (table names only)
    f" (SELECT revoked_at IS NULL FROM {PartnerCredential._meta.db_table} WHERE id = %s),"
    f" (SELECT status FROM {Partner._meta.db_table} WHERE id = %s)"
)


def process_state_clear() -> None:
    """Forget this process's cached token grants, throttle counts and API metadata (for tests)."""
    global _cache_down_until
    _grants.clear()
    _windows.clear()
    _cache_down_until = 0.0
    metadata_cache_clear()


def _live_state(grant: PartnerToken) -> LiveState:
    """The grant's token, credential and partner as they are in the database now."""
    # Scalar subqueries always give one row; "no row" would read as all three gone.
    row = fetch_one(_LIVE_STATE_SQL, [grant.token_id, grant.credential_id, grant.partner_id]) or (None, None, None)
    token_exists, credential_active, partner_status = row
    return LiveState(token_exists is not None, bool(credential_active), partner_status)


def _live_state_enforce(live: LiveState, cache_key: str) -> None:
    """Refuse a caller the live state does not admit: 401 for a token that ended, 403 for a suspension."""
    if not live.authenticated:
        _grants.pop(cache_key, None)
        raise InvalidToken()
    if not live.admitted:
        raise PartnerSuspended()


# The methods a ``live_state_combined`` view answers through ``consent_state_for`` (Django answers
# HEAD with the view's GET).
COMBINED_METHODS = frozenset({"GET", "HEAD"})


@dataclass
class DeferredLiveState:
    """A request whose live state its view reads in its own statement (``live_state_combined``)."""

    grant: PartnerToken
    cache_key: str
    view_entered: bool = False  # scopes and throttle passed; the view's code runs
    checked: bool = False


class PartnerAuthentication(OAuth2Authentication):
    """Bearer tokens of partner credentials; sets ``request.partner`` (loaded only when used)."""

    www_authenticate_realm = "partner-api"

    def authenticate(self, request: Request) -> tuple[AnonymousUser, PartnerToken] | None:
        scheme, _sep, raw_token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        raw_token = raw_token.strip()
        if scheme.lower() != "bearer" or not raw_token:
            return None
        key = hashlib.sha256(raw_token.encode()).hexdigest()
        now = time.monotonic()
        cached = _grants.get(key)
        if cached is not None and cached[0] > now:
            grant = cached[1]
        else:
            found = self._grant_from_oauth(request)
            if found is None:
                raise InvalidToken()
            grant = found
            if len(_grants) >= GRANT_CACHE_MAX:
                _grants.clear()
            _grants[key] = (now + GRANT_CACHE_SECONDS, grant)
        if grant.expires <= timezone.now():
            _grants.pop(key, None)
            raise InvalidToken()
        view = (request.parser_context or {}).get("view")
        # Only the reads the view writes itself: OPTIONS and the methods it does not answer (405)
        # are DRF's, and check the live state here like any other endpoint.
        if getattr(view, "live_state_combined", False) and request.method in COMBINED_METHODS:
            request.live_state_deferred = DeferredLiveState(grant, key)  # type: ignore[attr-defined]
        else:
            _live_state_enforce(_live_state(grant), key)
        partner_id = grant.partner_id
        request.partner = SimpleLazyObject(lambda: Partner.objects.get(pk=partner_id))  # type: ignore[attr-defined]
        return AnonymousUser(), grant

    def _grant_from_oauth(self, request: Request) -> PartnerToken | None:
        """Full validation by django-oauth-toolkit, then the credential the token was issued to."""
        result = super().authenticate(request)
        if result is None:
            return None
        token = cast(AccessToken, result[1])
        credentials = PartnerCredential.objects.filter(application_id=token.application_id)
        credential = credentials.values_list("pk", "partner_id").first()
        if credential is None:
            return None
        return PartnerToken(
            token_id=token.pk,
            partner_id=credential[1],
            credential_id=credential[0],
            scopes=frozenset(token.scope.split()),
            expires=token.expires,
        )


def partner_token(request: Request) -> PartnerToken:
    """The calling partner's token grant, in a view behind ``PartnerApi``."""
    return cast(PartnerToken, request.auth)


class PartnerScopes(BasePermission):
    """The token must be a partner's and carry every scope in the view's ``required_scopes``."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        token = request.auth
        if not isinstance(token, PartnerToken):
            return False  # DRF answers 401 because an authenticator is configured
        required = list(getattr(view, "required_scopes", []))
        if not token.scopes.issuperset(required):
            raise InsufficientScope(required)
        return True


def rate_parse(rate: str) -> tuple[int, int]:
    """``"1200/minute"`` → ``(1200, 60)``, in DRF's rate syntax."""
    count, _sep, period = rate.partition("/")
    return int(count), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[0]]


@dataclass
class _WindowCount:
    """This process's view of one shared counter in the current window."""

    key: str
    known: int = 0  # the shared count when this process last added to it
    pending: int = 0  # requests this process admitted since then
    synced_at: float = 0.0


_windows: dict[str, _WindowCount] = {}
SYNC_SECONDS = 1.0
SYNC_BATCH_MAX = 50
# Counters are per partner, or per claimed client id and per address at the OAuth endpoints (which
# anyone can vary): past this many a process forgets them all and starts again, losing at most one
# unsent batch per counter.
WINDOWS_MAX = 10_000


# What the shared cache raises when it cannot count: Redis unreachable, timing out or refusing
# writes (redis-py does not wrap these in Django's cache API), or the file cache's disk.
CACHE_ERRORS = (RedisError, OSError)
# After a cache error a process counts locally this long before it tries the cache again, so an
# outage costs one failed round trip (and one log line) per process per period, not one per request.
CACHE_RETRY_SECONDS = 5.0
_cache_down_until = 0.0


def shared_counter_add(key: str, amount: int, timeout: int, *, scope: str) -> int | None:
    """Add to the shared counter (created with a lifetime if missing); returns the new total.

    Returns ``None`` if the cache is unavailable: a rate limit must not turn a cache outage into
    failed partner requests, so the caller lets the request through (counting it locally if it can).
    The failure is logged without the key (which names a partner or a client) and counted in
    ``portal_throttle_cache_errors_total`` under ``scope``.
    """
    global _cache_down_until
    if time.monotonic() < _cache_down_until:
        return None
    try:
        try:
            return cache.incr(key, amount)
        except ValueError:
            if cache.add(key, amount, timeout):
                return amount
            return cache.incr(key, amount)
    except CACHE_ERRORS as exc:
        _cache_down_until = time.monotonic() + CACHE_RETRY_SECONDS
        THROTTLE_CACHE_ERRORS.labels(scope=scope).inc()
        logger.warning(
            "rate limit %s: the cache is unavailable (%s); requests pass, counted in this process only, for %d s",
            scope,
            type(exc).__name__,
            CACHE_RETRY_SECONDS,
        )
        return None


def window_admit(name: str, rate: str, *, scope: str) -> int | None:
    """Count one request against the fixed window ``name`` at ``rate``; seconds to wait if over it.

    Every server process adds to one shared counter per name and window. To keep the cache off the
    hot path, a process adds its admissions in batches of up to 1% of the limit (at most 50), or
    after a second, and always before it would refuse; so the shared count lags by at most one batch
    per process. While the cache is down each process counts alone (the limit then holds per
    process) and adds its count to the shared one when the cache is back.
    """
    limit, duration = rate_parse(rate)
    now = time.time()
    window = int(now // duration)
    key = f"{name}:{duration}:{window}"
    count = _windows.get(name)
    if count is None or count.key != key:
        if count is None and len(_windows) >= WINDOWS_MAX:
            _windows.clear()
        count = _windows[name] = _WindowCount(key=key, synced_at=now)
    count.pending += 1
    batch = min(SYNC_BATCH_MAX, max(1, limit // 100))
    if count.known + count.pending > limit or count.pending >= batch or now - count.synced_at >= SYNC_SECONDS:
        total = shared_counter_add(key, count.pending, duration + 1, scope=scope)
        if total is not None:
            count.known, count.pending = total, 0
        count.synced_at = now
    if count.known + count.pending <= limit:
        return None
    return max(1, int((window + 1) * duration - now + 0.999))


class PartnerRateThrottle(BaseThrottle):
    """Requests per partner per fixed window (``PARTNER_API_RATE``), counted in batches (``window_admit``).

    Its connected apps' calls with their grant tokens count in the partner's window too.

    A fixed window lets a client burst up to twice the rate across a window boundary, which is
    acceptable for abuse protection.
    """

    scope = "partner_api"

    def __init__(self) -> None:
        self.retry_after = 1

    def allow_request(self, request: Request, view: APIView) -> bool:
        # A partner's own tokens and the tokens of its connected apps (consents/api/grants.py) count
        # in the partner's one window.
        partner_id = getattr(request.auth, "partner_id", None)
        if partner_id is None:
            return True
        wait = window_admit(f"partner-api-throttle:{partner_id}", settings.PARTNER_API_RATE, scope=self.scope)
        if wait is None:
            return True
        self.retry_after = wait
        return False

    def wait(self) -> float:
        return self.retry_after


def _deferred(request: Request) -> DeferredLiveState | None:
    return getattr(request, "live_state_deferred", None)


def consent_state_for(request: Request, *, subject_id: str, purpose: str) -> ConsentState | None:
    """The caller's consent check with its live state, in one statement; ``None`` when out of reach.

    The only read of a ``live_state_combined`` view: raises the same 401 or 403 problem as
    authentication when the token, its credential or the partner ended, and then no consent was read.
    """
    deferred = _deferred(request)
    if deferred is None:
        raise ImproperlyConfigured("consent_state_for() serves only views that declare live_state_combined")
    grant = deferred.grant
    # Marked before the read: from here the view answers with the live state's verdict, or with the
    # error the read raised (a database outage is a 503, not the guard's 500).
    deferred.checked = True
    live, state = consent_state_live(
        token_id=grant.token_id,
        credential_id=grant.credential_id,
        partner_id=grant.partner_id,
        subject_id=subject_id,
        purpose=purpose,
    )
    _live_state_enforce(live, deferred.cache_key)
    return state


class PartnerApi(APIView):
    """Base of every authenticated endpoint: partner token, required scopes, per-partner throttle.

    A view that sets ``live_state_combined`` checks the token's live state in its own statement
    through ``consent_state_for`` when it answers a GET (or HEAD); one that answers without doing so
    is refused with an error (500), never sent.
    """

    authentication_classes = [PartnerAuthentication]
    permission_classes = [PartnerScopes]
    throttle_classes = [PartnerRateThrottle]
    required_scopes: list[str] = []
    live_state_combined = False

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        deferred = _deferred(request)
        if deferred is not None:
            deferred.view_entered = True

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        deferred = _deferred(request)
        if deferred is not None and deferred.view_entered and not deferred.checked:
            # A refusal from authentication, scopes or throttle needs no live state; anything the
            # view itself answered does.
            raise ImproperlyConfigured(f"{type(self).__name__} answered without checking the token's live state")
        return super().finalize_response(request, response, *args, **kwargs)
