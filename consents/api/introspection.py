"""RFC 7662 token introspection on a lean path: one statement, no oauthlib request in between.

Resource servers introspect on every call they serve, so this endpoint is on their hot path. It
does what django-oauth-toolkit's view and the partner hooks did together — authenticate the
client (secret and standing of its credential or app), find the token, check a connected app's
grant live — but reads the caller and the token in one statement.

Who sees what:
- a partner credential's token is visible to that credential's own client only;
- a connected app's token is visible to any client of the app's partner (its resource servers
  usually hold the partner's credential, not the app's), and only while the grant, the app and
  the partner are all active;
- anything else — unknown, expired, another partner's — is ``{"active": false}``, so a caller
  learns nothing about tokens that are not its own, not even that they exist.
"""

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.models import AccessToken, Application

from consents.api.client_secrets import client_secret_check
from consents.api.oauth import OAuthThrottleMixin, client_credentials
from consents.api.selectors import _aware
from consents.models import (
    AppGrant,
    AppGrantToken,
    ConnectedApp,
    ConsentStatus,
    Partner,
    PartnerCredential,
    PartnerStatus,
    PartnerSubject,
    Purpose,
)
from portal.prepared import fetch_one

# The caller: its stored secret, and the partner behind it with whether it may act now. A client
# belongs to a partner credential or to a connected app, never both (COALESCE picks the one).
_CALLER_SQL = (
    "SELECT app.id AS caller_id, app.client_secret,"  # noqa: S608 (table names only)
    " COALESCE(cred.partner_id, capp.partner_id) AS caller_partner_id,"
    " CASE WHEN cred.id IS NOT NULL THEN cred.revoked_at IS NULL AND cpartner.status = %s"
    " ELSE capp.disabled_at IS NULL AND apartner.status = %s END AS caller_in_good_standing"
    f" FROM {Application._meta.db_table} app"
    f" LEFT JOIN {PartnerCredential._meta.db_table} cred ON cred.application_id = app.id"
    f" LEFT JOIN {Partner._meta.db_table} cpartner ON cpartner.id = cred.partner_id"
    f" LEFT JOIN {ConnectedApp._meta.db_table} capp ON capp.application_id = app.id"
    f" LEFT JOIN {Partner._meta.db_table} apartner ON apartner.id = capp.partner_id"
    " WHERE app.client_id = %s"
)

# The token, its client, and — for a connected app's token — the grant it was issued under, the
# app's partner and whether grant, app and partner are live now, the purpose and the consumer's
# pairwise subject id for that partner. The grant's state is read here, never from a cache.
_TOKEN_SQL = (
    "SELECT tok.application_id, tok.expires, tok.scope, client.client_id,"  # noqa: S608 (table names only)
    " grant_.id AS grant_id, gapp.partner_id AS grant_partner_id,"
    " grant_.status = %s AND (grant_.expires_at IS NULL OR grant_.expires_at > %s)"
    " AND gapp.disabled_at IS NULL AND gpartner.status = %s AS grant_live,"
    " grant_.authorization_details, purpose.slug AS purpose, subject.subject_id"
    f" FROM {AccessToken._meta.db_table} tok"
    f" LEFT JOIN {Application._meta.db_table} client ON client.id = tok.application_id"
    f" LEFT JOIN {AppGrantToken._meta.db_table} link ON link.access_token_id = tok.id"
    f" LEFT JOIN {AppGrant._meta.db_table} grant_ ON grant_.id = link.grant_id"
    f" LEFT JOIN {ConnectedApp._meta.db_table} gapp ON gapp.id = grant_.app_id"
    f" LEFT JOIN {Partner._meta.db_table} gpartner ON gpartner.id = gapp.partner_id"
    f" LEFT JOIN {Purpose._meta.db_table} purpose ON purpose.id = grant_.purpose_id"
    f" LEFT JOIN {PartnerSubject._meta.db_table} subject"
    " ON subject.partner_id = gapp.partner_id AND subject.user_id = grant_.user_id"
    " WHERE tok.token_checksum = %s"
)

# Both in one round trip: no row when the client is unknown, the token's columns empty when the
# token is. Nothing about the token leaves this module before the caller's secret is checked.
_INTROSPECT_SQL = f"SELECT * FROM ({_CALLER_SQL}) caller LEFT JOIN ({_TOKEN_SQL}) token ON 1 = 1"  # noqa: S608

INACTIVE = {"active": False}


def token_introspect(client_id: str, secret: str, token_value: str) -> dict[str, Any] | None:
    """The RFC 7662 answer about ``token_value``; ``None`` if the client fails to authenticate.

    The client must present its secret and its credential (or connected app) and partner must be
    in good standing. The answer is ``{"active": false}`` unless the caller may know the token.
    """
    if not client_id or not secret:
        return None
    now = timezone.now()
    checksum = hashlib.sha256(token_value.encode()).hexdigest()
    params: list[Any] = [PartnerStatus.ACTIVE, PartnerStatus.ACTIVE, client_id, ConsentStatus.GRANTED, now]
    row = fetch_one(_INTROSPECT_SQL, [*params, PartnerStatus.ACTIVE, checksum])
    if row is None:
        return None
    caller_id, stored_secret, caller_partner_id, in_good_standing, *token = row
    if not client_secret_check(secret, stored_secret) or caller_partner_id is None or not in_good_standing:
        return None
    application_id, expires, scope, client, grant_id, grant_partner_id, grant_live, details, purpose, sub = token
    expires_at: datetime | None = _aware(expires)
    if expires_at is None or expires_at <= now:
        return INACTIVE
    answer: dict[str, Any] = {
        "active": True,
        "scope": scope,
        "client_id": client,
        "token_type": "Bearer",
        "exp": int(expires_at.timestamp()),
    }
    if grant_id is None:
        # A partner credential's token: only its own client may see it.
        return answer if application_id == caller_id else INACTIVE
    if grant_partner_id != caller_partner_id or not grant_live:
        return INACTIVE
    granted = json.loads(details) if isinstance(details, str | bytes) else details
    return answer | {
        "iss": settings.SITE_URL,
        "sub": sub,
        # PostgreSQL returns a UUID, SQLite its 32 hex digits.
        "grant_id": str(uuid.UUID(str(grant_id))),
        "purpose": purpose,
        # What the consumer approved, as recorded in the granted details.
        "data_categories": sorted(item["category"] for item in granted["data_categories"]),
        "authorization_details": [granted],
    }


@method_decorator([csrf_exempt, login_not_required], name="dispatch")
class IntrospectView(OAuthThrottleMixin, View):
    """``POST /oauth/introspect/`` (RFC 7662), rate limited in its own windows.

    ``GET`` with ``?token=`` is answered too, as django-oauth-toolkit's view did, for clients
    written against it; RFC 7662 asks for ``POST``, which keeps tokens out of access logs.
    """

    http_method_names = ["get", "post"]
    throttle_bucket = "introspect"
    client_rate_setting = "OAUTH_INTROSPECT_RATE_PER_CLIENT"
    ip_rate_setting = "OAUTH_INTROSPECT_RATE_PER_IP"

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._answer(request, request.GET.get("token"))

    def post(self, request: HttpRequest) -> HttpResponse:
        return self._answer(request, request.POST.get("token"))

    def _answer(self, request: HttpRequest, token_value: str | None) -> HttpResponse:
        answer = token_introspect(*client_credentials(request), token_value or "")
        if answer is None:
            # RFC 6749 section 5.2: a failed client authentication is 401 invalid_client.
            response = JsonResponse(
                {"error": "invalid_client", "error_description": "Client authentication failed."}, status=401
            )
            response["WWW-Authenticate"] = 'Basic realm="oauth"'
        elif not token_value:
            response = JsonResponse(
                {"error": "invalid_request", "error_description": "The token parameter is missing."}, status=400
            )
        else:
            response = JsonResponse(answer)
        response["Cache-Control"] = "no-store"
        return response
