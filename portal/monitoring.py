"""``/metrics`` for Prometheus, open only to the scraper: a bearer token or an allowed address.

Anyone else gets the portal's ordinary 404, so the endpoint's existence is not revealed.
"""

import hmac
import ipaddress

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from portal.http import client_ip
from portal.metrics import scrape_registry


def metrics_allowed(request: HttpRequest) -> bool:
    """Whether the request carries ``METRICS_TOKEN`` as a bearer token or comes from ``METRICS_ALLOWED_ADDRESSES``."""
    token = settings.METRICS_TOKEN
    scheme, _space, presented = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer":
        # Constant time, so the token cannot be guessed byte by byte from response times.
        return hmac.compare_digest(presented.strip().encode(), token.encode())
    if not settings.METRICS_ALLOWED_ADDRESSES:
        return False
    try:
        address = ipaddress.ip_address(client_ip(request))
    except (BadRequest, PermissionDenied, ValueError):
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_ADDRESSES)


# No CSRF check: the view changes nothing, and the check's 403 would answer a POST before the 404 does.
@csrf_exempt
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    # Checked before the method, so that not even a 405 tells an outsider the endpoint exists.
    if not metrics_allowed(request):
        raise Http404
    if request.method not in {"GET", "HEAD"}:
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
