from allauth.account.adapter import get_adapter
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from portal.models import User


class AuthenticatedHttpRequest(HttpRequest):
    """The request type of views behind ``login_required``: ``user`` is a real account."""

    user: User
    htmx: HtmxDetails


def client_ip(request: HttpRequest) -> str:
    """The address of the client that sent ``request``, by the rule allauth's rate limits use.

    ``REMOTE_ADDR`` unless the deployment says it runs behind proxies (``TRUSTED_PROXY_COUNT``) or
    that its proxy names the client in a header (``TRUSTED_CLIENT_IP_HEADER``); the /oauth/
    throttles ask the same adapter, so the whole portal agrees on who a client is. Raises
    ``PermissionDenied`` (403) when no valid address can be found, ``BadRequest`` (400) when
    ``X-Forwarded-For`` is shorter than the trusted proxy chain.
    """
    return get_adapter(request).get_client_ip(request)
