"""The outermost middleware: a request id, the request's metrics and its one log line."""

import logging
import time
from collections.abc import Callable
from typing import Any

from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from portal.metrics import REQUEST_DURATION
from portal.request_id import HEADER, request_id_accept, request_id_bind

logger = logging.getLogger("portal.request")

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The label of requests that matched no URL pattern (404s for made-up paths, redirects before routing).
UNMATCHED = "<unmatched>"


def route_of(request: HttpRequest) -> str:
    """The URL pattern that served the request (``consents/<int:pk>/revoke/``), never its path.

    Paths carry ids and tokens; patterns are few and fixed, so they make labels of bounded
    cardinality and log fields with nothing personal in them.
    """
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED
    return "/" + match.route


class RequestObservabilityMiddleware:
    """Bind a request id (a sane incoming ``X-Request-ID`` or a new one) and echo it in the response;
    time the request into the per-route histogram and log one line for it.

    Goes first in ``MIDDLEWARE`` so that it times the whole stack and sees the final status.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_accept(request.headers.get(HEADER))
        # Bound until the response is closed (request_finished below), so that what Django logs
        # about the request after the middleware returns (django.request's errors) carries it too.
        request_id_bind(request_id)
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        method = request.method if request.method in KNOWN_METHODS else "other"
        route = route_of(request)
        REQUEST_DURATION.labels(route=route, method=method, status=f"{response.status_code // 100}xx").observe(elapsed)
        duration_ms = round(elapsed * 1000, 1)
        logger.info(
            "%s %s %s %.1f ms",
            method,
            route,
            response.status_code,
            duration_ms,
            extra={"method": method, "route": route, "status": response.status_code, "duration_ms": duration_ms},
        )
        response[HEADER] = request_id
        return response


@receiver(request_finished, dispatch_uid="portal.middleware.request_id_release")
def _request_id_release(**kwargs: Any) -> None:
    request_id_bind(None)
