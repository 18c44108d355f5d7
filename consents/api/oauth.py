"""django-oauth-toolkit hooks that tie OAuth clients to partner credentials, and the /oauth/ endpoints.

A token is only issued to a client whose credential is not revoked and whose partner is active,
and only for the scopes that credential allows; a credential holds at most
``OAUTH_MAX_LIVE_TOKENS_PER_CREDENTIAL`` live tokens. Client secrets are checked with a keyed
verifier (``client_secrets.py``), the endpoints are rate limited per claimed client and per
address, and a client can introspect or revoke only its own tokens.
"""

import base64
import binascii
import hashlib
from typing import Any
from urllib.parse import unquote_plus

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider import views as oauth_views
from oauth2_provider.models import AbstractApplication, AccessToken, Grant
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.scopes import BaseScopes
from oauth2_provider.settings import oauth2_settings

from consents.api.auth import window_admit
from consents.api.client_secrets import client_secret_check
from consents.models import AppGrant, AppGrantToken, ConnectedApp, PartnerCredential
from consents.services.apps import app_grant_code_replayed, app_grant_is_live
from portal.http import client_ip


def _owners(application: AbstractApplication) -> tuple[PartnerCredential | None, ConnectedApp | None]:
    """The client's partner credential and connected app (each with its partner), loaded once per instance.

    One query for both, kept in the instance's relation cache: authentication, scopes and
    introspection all ask within one request, about the application DOT loaded for it.
    """
    cache = application._state.fields_cache
    if "partner_credential" not in cache or "connected_app" not in cache:
        row = (
            type(application)
            .objects.select_related("partner_credential__partner", "connected_app__partner")
            .get(pk=application.pk)
        )
        for name in ("partner_credential", "connected_app"):
            cache[name] = row._state.fields_cache.get(name)
    return cache["partner_credential"], cache["connected_app"]


def credential_for(application: AbstractApplication | None) -> PartnerCredential | None:
    if application is None or application.pk is None:
        return None
    return _owners(application)[0]


def connected_app_for(application: AbstractApplication | None) -> ConnectedApp | None:
    if application is None or application.pk is None:
        return None
    return _owners(application)[1]


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
        """The client's secret must match and its credential (or connected app) and partner be in good standing."""
        if not super().authenticate_client(request, *args, **kwargs):
            return False
        credential = credential_for(request.client)
        if credential is not None:
            return credential.is_active and credential.partner.is_active
        app = connected_app_for(request.client)
        return app is not None and app.is_active

    def validate_code(self, client_id: str, code: str, client: Any, request: Any, *args: Any, **kwargs: Any) -> bool:
        """A connected app's code is claimed here, once; a code that comes back revokes what it issued.

        Claiming (a conditional update of the code's expiry to now) happens before the tokens are
        made, so two concurrent exchanges of one code cannot both win. The used code stays stored
        (expired) until ``cleartokens`` removes it, which is what lets a replay be recognised.
        """
        link = (
            AppGrantToken.objects.select_related("grant__app__partner", "code")
            .filter(code__code=code, code__application=client)
            .first()
        )
        if link is None:
            return super().validate_code(client_id, code, client, request, *args, **kwargs)
        now = timezone.now()
        claimed = Grant.objects.filter(pk=link.code_id, expires__gt=now).update(expires=now)
        if not claimed:
            app_grant_code_replayed(grant=link.grant)
            return False
        if not app_grant_is_live(link.grant):
            return False
        code_row = link.code
        assert code_row is not None  # the link was found through its code
        request.scopes = code_row.scope.split()
        request.user = code_row.user
        request.app_grant = link.grant
        return True

    def invalidate_authorization_code(self, client_id: str, code: str, request: Any, *args: Any, **kwargs: Any) -> None:
        if getattr(request, "app_grant", None) is not None:
            return  # claimed (expired) in validate_code and kept to recognise a replay
        super().invalidate_authorization_code(client_id, code, request, *args, **kwargs)

    def validate_refresh_token(self, refresh_token: str, client: Any, request: Any, *args: Any, **kwargs: Any) -> bool:
        """A connected app's refresh token works only while its grant does (checked live)."""
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        link = (
            AppGrantToken.objects.select_related("grant__app__partner")
            .filter(refresh_token=request.refresh_token_instance)
            .first()
        )
        if link is None:
            return connected_app_for(client) is None
        if not app_grant_is_live(link.grant):
            return False
        request.app_grant = link.grant
        return True

    def _create_access_token(self, expires: Any, request: Any, token: Any, source_refresh_token: Any = None) -> Any:
        access_token = super()._create_access_token(expires, request, token, source_refresh_token)
        if (grant := getattr(request, "app_grant", None)) is not None:
            AppGrantToken.objects.create(grant=grant, access_token=access_token)
            # The first token makes the connection (until then the sweep may end it as unfinished).
            AppGrant.objects.filter(pk=grant.pk, connected_at__isnull=True).update(connected_at=timezone.now())
        return access_token

    def _create_refresh_token(
        self, request: Any, refresh_token_code: str, access_token: Any, previous_refresh_token: Any
    ) -> Any:
        refresh_token = super()._create_refresh_token(request, refresh_token_code, access_token, previous_refresh_token)
        if (grant := getattr(request, "app_grant", None)) is not None:
            AppGrantToken.objects.create(grant=grant, refresh_token=refresh_token)
        return refresh_token

    def _check_secret(self, provided_secret: str, stored_secret: str) -> bool:
        return client_secret_check(provided_secret, stored_secret)

    def save_bearer_token(self, token: Any, request: Any, *args: Any, **kwargs: Any) -> None:
        """Store the new token, then revoke the credential's oldest live tokens beyond the cap.

        Revoking the oldest rather than refusing the new one keeps a partner working when its
        processes restart and each fetches a token: the tokens it still uses are the newest.
        """
        grant: AppGrant | None = getattr(request, "app_grant", None)
        if grant is not None:
            # A connected app's tokens: short-lived, linked to the grant (in DOT's transaction), and
            # never capped per client, which would end other consumers' tokens.
            token["expires_in"] = settings.CONNECT_ACCESS_TOKEN_SECONDS
            super().save_bearer_token(token, request, *args, **kwargs)
            token["grant_id"] = str(grant.id)
            token["authorization_details"] = [grant.authorization_details]
            return
        with transaction.atomic():
            super().save_bearer_token(token, request, *args, **kwargs)
            live = AccessToken.objects.filter(application_id=request.client.pk, expires__gt=timezone.now())
            surplus = live.order_by("-created", "-pk").values_list("pk", flat=True)[
                settings.OAUTH_MAX_LIVE_TOKENS_PER_CREDENTIAL :
            ]
            if surplus_ids := list(surplus):
                AccessToken.objects.filter(pk__in=surplus_ids).delete()


def client_credentials(request: HttpRequest) -> tuple[str, str]:
    """The client_id and secret a request presents (HTTP Basic first, then the form body), unchecked.

    RFC 6749 section 2.3.1: in the Basic header both are form-urlencoded before being joined.
    """
    scheme, _sep, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        client_id, _sep, secret = decoded.partition(":")
        return unquote_plus(client_id), unquote_plus(secret)
    return str(request.POST.get("client_id", "")), str(request.POST.get("client_secret", ""))


def claimed_client_id(request: HttpRequest) -> str:
    """The client_id a request presents, not yet authenticated."""
    return client_credentials(request)[0]


def oauth_throttle_wait(request: HttpRequest, client_rate: str, ip_rate: str, bucket: str = "token") -> int | None:
    """Count the request against its client's and its address's windows; seconds to wait if over either.

    Counted before any work, in batches through the shared cache (``window_admit``), so a flood
    costs little more than a dictionary lookup per request. The client_id is only claimed at this
    point, so an attacker can use up a partner's window (not its secret): the per-client limit is
    generous and the window short. While the cache is down each process counts alone
    (``shared_counter_add`` logs and counts it): client secrets are high-entropy, so the limit
    guards capacity, not secrets.
    """
    wait: int | None = None
    limits = [("ip", client_ip(request), ip_rate)]
    if client_id := claimed_client_id(request):
        limits.append(("client", client_id, client_rate))
    for scope, ident, rate in limits:
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        over = window_admit(f"oauth-throttle:{bucket}:{scope}:{digest}", rate, scope=f"oauth_{scope}")
        if over is not None:
            wait = max(wait or 0, over)
    return wait


def slow_down_response(wait: int) -> JsonResponse:
    # An RFC 6749 section 5.2 error body. "slow_down" is the registered OAuth error for "too many
    # requests, back off" (RFC 8628); Retry-After says for how long. error_description must be
    # ASCII for developers (RFC 6749), so it is not translated.
    response = JsonResponse(
        {"error": "slow_down", "error_description": "Too many requests; retry after the Retry-After delay."},
        status=429,
    )
    response["Retry-After"] = str(wait)
    response["Cache-Control"] = "no-store"
    return response


class OAuthThrottleMixin:
    """Rate limits an /oauth/ endpoint before it authenticates the client (the costly part)."""

    # Each bucket counts in its own windows: a resource server's introspections never use up its
    # partner's token requests.
    throttle_bucket = "token"
    client_rate_setting = "OAUTH_TOKEN_RATE_PER_CLIENT"
    ip_rate_setting = "OAUTH_TOKEN_RATE_PER_IP"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        rates = getattr(settings, self.client_rate_setting), getattr(settings, self.ip_rate_setting)
        if (wait := oauth_throttle_wait(request, *rates, bucket=self.throttle_bucket)) is not None:
            return slow_down_response(wait)
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]


@method_decorator([csrf_exempt, login_not_required], name="dispatch")
class TokenView(OAuthThrottleMixin, oauth_views.TokenView):
    """The token endpoint (client-credentials grant), rate limited."""


@method_decorator([csrf_exempt, login_not_required], name="dispatch")
class RevokeTokenView(OAuthThrottleMixin, oauth_views.RevokeTokenView):
    """RFC 7009 revocation, rate limited. django-oauth-toolkit already revokes only the caller's own
    tokens and answers 200 for anyone else's, as for an unknown token."""
