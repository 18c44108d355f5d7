"""The machine side of connected apps: pushed authorisation requests (RFC 9126) and server metadata (RFC 8414).

Errors are RFC 6749 section 5.2 JSON bodies; their descriptions are for developers (ASCII English).
"""

import re
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.common import Request as OauthlibRequest

from audit.signing import public_jwks
from consents.api.oauth import OAuthThrottleMixin, connected_app_for
from consents.authorization_details import DETAILS_TYPE, DetailsError, details_parse, details_validate
from consents.services.apps import pushed_authorization_create

# RFC 7636 section 4.1: 43 to 128 unreserved characters (an S256 challenge is 43).
CODE_CHALLENGE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
STATE_MAX_LENGTH = 500


def oauth_error(error: str, description: str, status: int = 400) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="oauth"'
    return response


@method_decorator([csrf_exempt, login_not_required], name="dispatch")
class PushedAuthorizationView(OAuthThrottleMixin, OAuthLibMixin, View):
    """POST /connect/par: a connected app pushes its authorisation request and gets a request_uri."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        core = self.get_oauthlib_core()
        uri, http_method, body, headers = core._extract_params(request)
        oauth_request = OauthlibRequest(uri, http_method, body, headers)
        if not core.server.request_validator.authenticate_client(oauth_request):
            return oauth_error("invalid_client", "Client authentication failed.", 401)
        app = connected_app_for(oauth_request.client)
        if app is None:
            return oauth_error("unauthorized_client", "This client is not a connected app.")
        params = request.POST
        if "request_uri" in params:
            return oauth_error("invalid_request", "request_uri must not be sent to this endpoint.")
        if params.get("client_id", app.application.client_id) != app.application.client_id:
            return oauth_error("invalid_request", "client_id does not match the authenticated client.")
        if params.get("response_type") != "code":
            return oauth_error("invalid_request", "response_type must be code.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uri_list:
            return oauth_error("invalid_request", "redirect_uri is not registered for this client.")
        if params.get("code_challenge_method") != "S256":
            return oauth_error("invalid_request", "PKCE is required with code_challenge_method S256.")
        code_challenge = params.get("code_challenge", "")
        if not CODE_CHALLENGE.fullmatch(code_challenge):
            return oauth_error("invalid_request", "code_challenge is missing or malformed.")
        state = params.get("state", "")
        if not state or len(state) > STATE_MAX_LENGTH:
            return oauth_error("invalid_request", f"state is required, at most {STATE_MAX_LENGTH} characters.")
        try:
            details = details_parse(params.get("authorization_details", ""))
            details_validate(details, app)
        except DetailsError as error:
            return oauth_error(error.error, error.description)
        pushed = pushed_authorization_create(
            app=app,
            parameters={
                "redirect_uri": redirect_uri,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
                "authorization_details": details,
            },
        )
        response = JsonResponse(
            {"request_uri": pushed.request_uri, "expires_in": settings.CONNECT_REQUEST_URI_SECONDS}, status=201
        )
        response["Cache-Control"] = "no-store"
        return response


@login_not_required
@require_GET
def authorization_server_metadata(request: HttpRequest) -> JsonResponse:
    """RFC 8414 metadata: where the endpoints are and what this server supports."""
    site = settings.SITE_URL
    metadata: dict[str, Any] = {
        "issuer": site,
        "authorization_endpoint": site + reverse("connect:authorize"),
        "pushed_authorization_request_endpoint": site + reverse("connect:par"),
        "require_pushed_authorization_requests": True,
        "token_endpoint": site + reverse("oauth2_provider:token"),
        "introspection_endpoint": site + reverse("oauth2_provider:introspect"),
        "revocation_endpoint": site + reverse("oauth2_provider:revoke-token"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "authorization_details_types_supported": [DETAILS_TYPE],
        "authorization_response_iss_parameter_supported": True,
    }
    if public_jwks().get("keys"):
        metadata["jwks_uri"] = site + reverse("jwks")
    response = JsonResponse(metadata)
    response["Cache-Control"] = "public, max-age=3600"
    return response
