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
import time
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
from oauthlib.common import Request as OauthlibRequest

from consents.api.auth import rate_parse, shared_counter_add
from consents.api.client_secrets import client_secret_check
from consents.models import AppGrant, AppGrantToken, ConnectedApp, Partner, PartnerCredential, PartnerSubject
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


def partner_of(application: AbstractApplication | None) -> Partner | None:
    """The partner a client belongs to, through its credential or its connected app."""
    if (credential := credential_for(application)) is not None:
        return credential.partner
    if (app := connected_app_for(application)) is not None:
        return app.partner
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


def claimed_client_id(request: HttpRequest) -> str:
    """The client_id a request presents (HTTP Basic first, then the form body), not yet authenticated."""
    scheme, _sep, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return unquote_plus(decoded.partition(":")[0])
    return str(request.POST.get("client_id", ""))


def oauth_throttle_wait(request: HttpRequest, client_rate: str, ip_rate: str, bucket: str = "token") -> int | None:
    """Count the request against its client's and its address's windows; seconds to wait if over either.

    Counted before any work, so a flood costs one cache round trip per request. The client_id is
    only claimed at this point, so an attacker can use up a partner's window (not its secret):
    the per-client limit is generous and the window short. While the cache is down the endpoints
    answer unlimited (``shared_counter_add`` logs and counts it): client secrets are high-entropy,
    so the limit guards capacity, not secrets.
    """
    now = time.time()
    wait: int | None = None
    limits = [("ip", client_ip(request), ip_rate)]
    if client_id := claimed_client_id(request):
        limits.append(("client", client_id, client_rate))
    for scope, ident, rate in limits:
        limit, duration = rate_parse(rate)
        window = int(now // duration)
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        key = f"oauth-throttle:{bucket}:{scope}:{digest}:{duration}:{window}"
        count = shared_counter_add(key, 1, duration + 1, scope=f"oauth_{scope}")
        if count is not None and count > limit:
            wait = max(wait or 0, max(1, int((window + 1) * duration - now + 0.999)))
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


@method_decorator([csrf_exempt, login_not_required], name="dispatch")
class IntrospectTokenView(OAuthThrottleMixin, oauth_views.IntrospectTokenView):
    """RFC 7662 introspection of the caller's own tokens only, rate limited.

    Another client's token is answered exactly like an unknown one, ``{"active": false}``, so a
    partner learns nothing about other partners' tokens, not even that they exist.
    """

    caller: AbstractApplication | None = None
    # Resource servers introspect on every call they serve, so the per-client limit is their own.
    throttle_bucket = "introspect"
    client_rate_setting = "OAUTH_INTROSPECT_RATE_PER_CLIENT"
    ip_rate_setting = "OAUTH_INTROSPECT_RATE_PER_IP"

    def authenticate_client(self, request: HttpRequest) -> bool:
        # DOT's own check, keeping the client it authenticated, which DOT does not hand back.
        core = self.get_oauthlib_core()
        uri, http_method, body, headers = core._extract_params(request)
        oauth_request = OauthlibRequest(uri, http_method, body, headers)
        valid = bool(core.server.request_validator.authenticate_client(oauth_request))
        self.caller = oauth_request.client if valid else None
        return valid

    def _own_token_response(self, token_value: str | None) -> HttpResponse:
        if token_value is None:
            return self.get_token_response(token_value)
        # A caller let in by a bearer token (DOT's other path) has no client here: it sees nothing.
        if self.caller is None or self.caller.pk is None:
            return JsonResponse({"active": False})
        checksum = hashlib.sha256(token_value.encode()).hexdigest()
        # One query: the token, its client, and the grant it was issued under (if any) with its app,
        # partner and purpose; the grant's state is read here, live, never from a cache.
        token = (
            AccessToken.objects.filter(token_checksum=checksum)
            .select_related("application", "app_grant_link__grant__app__partner", "app_grant_link__grant__purpose")
            .first()
        )
        if token is None:
            return JsonResponse({"active": False})
        link = token._state.fields_cache.get("app_grant_link")
        if link is None:
            if token.application_id != self.caller.pk:
                return JsonResponse({"active": False})
            return self.get_token_response(token_value)
        return self._app_token_response(token, link.grant)

    def _app_token_response(self, token: AccessToken, grant: AppGrant) -> HttpResponse:
        """A connected app's token: any client of the app's partner may ask; the grant is checked live."""
        caller_partner = partner_of(self.caller)
        if caller_partner is None or caller_partner.pk != grant.app.partner_id:
            return JsonResponse({"active": False})
        if not token.is_valid() or not app_grant_is_live(grant):
            return JsonResponse({"active": False})
        subject = PartnerSubject.objects.filter(partner_id=grant.app.partner_id, user_id=grant.user_id).first()
        return JsonResponse(
            {
                "active": True,
                "scope": token.scope,
                "client_id": token.application.client_id if token.application else None,
                "token_type": "Bearer",
                "exp": int(token.expires.timestamp()),
                "iss": settings.SITE_URL,
                "sub": subject.subject_id if subject is not None else None,
                "grant_id": str(grant.id),
                "purpose": grant.purpose.slug,
                # What the consumer approved, as recorded in the granted details (no extra query).
                "data_categories": sorted(item["category"] for item in grant.authorization_details["data_categories"]),
                "authorization_details": [grant.authorization_details],
            }
        )

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self._own_token_response(request.GET.get("token"))

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self._own_token_response(request.POST.get("token"))
