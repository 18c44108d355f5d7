"""django-oauth-toolkit hooks that tie OAuth clients to partner credentials.

A token is only issued to a client whose credential is not revoked and whose partner is active,
and only for the scopes that credential allows.
"""

from typing import Any

from oauth2_provider.models import AbstractApplication
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.scopes import BaseScopes
from oauth2_provider.settings import oauth2_settings

from consents.models import PartnerCredential


def credential_for(application: AbstractApplication | None) -> PartnerCredential | None:
    if application is None or application.pk is None:
        return None
    try:
        return PartnerCredential.objects.select_related("partner").get(application_id=application.pk)
    except PartnerCredential.DoesNotExist:
        return None


class PartnerCredentialScopes(BaseScopes):
    """The scopes a client may ask for, and gets by default, are those of its partner credential."""

    def get_all_scopes(self) -> dict[str, str]:
        return oauth2_settings.SCOPES

    def get_available_scopes(self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any) -> list:
        credential = credential_for(application)
        if credential is None:
            return []
        return [scope for scope in credential.scope_list if scope in oauth2_settings.SCOPES]

    def get_default_scopes(self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any) -> list:
        return self.get_available_scopes(application, request)


class PartnerOAuth2Validator(OAuth2Validator):
    def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        """The client's secret must match and its credential and partner must both be in good standing."""
        if not super().authenticate_client(request, *args, **kwargs):
            return False
        credential = credential_for(request.client)
        return credential is not None and credential.is_active and credential.partner.is_active
