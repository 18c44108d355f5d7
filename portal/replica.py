"""Reads that may come from a read replica (``DATABASE_REPLICA_URL``), and the rules that keep them safe.

A replica takes the consumer pages that only show records (dashboard, activity, access, receipts)
and the partner's pull feed off the primary. It lags behind the primary by a moment, so:

- only code that asks for it reads from the replica: a view wrapped in ``replica_view`` (or a block
  in ``replica_reads()``); everything else — and so everything that decides consent (the consent
  check, access verdicts, grants and withdrawals, tokens, deliveries) — reads the primary;
- only the records the pages show (the ``consents``, ``audit`` and ``privacy_requests`` apps) come from
  the replica: sessions, accounts and OAuth tokens always come from the primary, so a consumer who
  has just signed in is not signed out by a replica that has not seen their session yet;
- inside a transaction on the primary, reads stay on the primary (a row lock or a read of what the
  transaction wrote must see the primary);
- a browser that has just changed something reads the primary for ``REPLICA_PIN_SECONDS``
  (``ReplicaPinMiddleware`` sets a short cookie on each unsafe request of a signed-in browser), so
  a consumer sees their own grant or withdrawal on the next page even when the replica lags.

Without ``DATABASE_REPLICA_URL`` (the default, and SQLite) there is no replica and nothing changes.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from typing import Any, cast

from django.conf import settings
from django.db import connections
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse

REPLICA = "replica"
PIN_COOKIE = "portal_primary"
REPLICA_APPS = frozenset({"consents", "audit", "privacy_requests"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_reading: ContextVar[bool] = ContextVar("portal_replica_reads", default=False)


def replica_enabled() -> bool:
    """Whether a replica is configured and reads may go to it (``REPLICA_READS``)."""
    return REPLICA in settings.DATABASES and settings.REPLICA_READS


class ReplicaRouter:
    """Send the reads that asked for the replica there; everything else to the primary."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        if (
            _reading.get()
            and model._meta.app_label in REPLICA_APPS
            and replica_enabled()
            and not connections["default"].in_atomic_block
        ):
            return REPLICA
        return None

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        return "default"

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        return True  # both aliases hold the same data

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        return db != REPLICA  # the replica follows the primary's schema by replication


@contextmanager
def replica_reads() -> Iterator[None]:
    """Let the reads in this block come from the replica (when one is configured)."""
    token = _reading.set(True)
    try:
        yield
    finally:
        _reading.reset(token)


def _streamed_from_replica(content: Iterator[Any]) -> Iterator[Any]:
    # A streamed body is produced after the view has returned: read it in the same mode.
    with replica_reads():
        yield from content


def reads_primary(request: HttpRequest) -> bool:
    """Whether this request must read the primary: it changes something, or its browser just did."""
    return request.method not in SAFE_METHODS or PIN_COOKIE in request.COOKIES


def replica_view[**P, R: HttpResponseBase](view: Callable[P, R]) -> Callable[P, R]:
    """A view whose safe requests may read the records they show from the replica."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        request = args[0]
        assert isinstance(request, HttpRequest)
        if not replica_enabled() or reads_primary(request):
            return view(*args, **kwargs)
        with replica_reads():
            response = view(*args, **kwargs)
        if isinstance(response, StreamingHttpResponse) and not response.is_async:
            response.streaming_content = _streamed_from_replica(cast(Iterator[bytes], response.streaming_content))
        return response

    return wrapper


class ReplicaPinMiddleware:
    """After a change, the browser reads the primary for ``REPLICA_PIN_SECONDS`` (read your own writes)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Signed-in browsers only: partners' API clients keep no cookies, and read nothing they wrote.
        user = getattr(request, "user", None)
        if request.method not in SAFE_METHODS and replica_enabled() and user is not None and user.is_authenticated:
            response.set_cookie(
                PIN_COOKIE,
                "1",
                max_age=settings.REPLICA_PIN_SECONDS,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        return response
