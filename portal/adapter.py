"""allauth customisations for the portal, in the one place allauth expects them."""

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import BadRequest, ImproperlyConfigured
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):
    def get_client_ip(self, request: HttpRequest) -> str:
        # With TRUSTED_PROXY_COUNT set, an X-Forwarded-For shorter than the proxy chain did not come
        # through our proxies; allauth calls that a configuration error (a 500). It is a bad request.
        try:
            return super().get_client_ip(request)
        except ImproperlyConfigured as error:
            raise BadRequest("X-Forwarded-For does not match the trusted proxies") from error
