"""Partner API: a connected app's grant, shaped after the FDX Consent API (``/api/v1/grants/{id}``).

Two kinds of caller: the partner, with its client-credentials token (``consents:read`` to read,
``acks:write`` to revoke), for any grant of its own apps; and the app itself, with an access
token issued under the grant, for that one grant only. Any other grant id, existing or not,
answers the same 404 problem.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import Actor
from consents.api.auth import PartnerApi, PartnerAuthentication, PartnerScopes, PartnerToken
from consents.api.fields import TEXT, StrictRegexField
from consents.api.problems import InvalidToken, NotFoundProblem, PartnerSuspended
from consents.api.schema import PROBLEMS_AUTHENTICATED, PROBLEMS_WITH_BODY, SECURITY_SCHEME, problem
from consents.models import (
    AppGrant,
    AppGrantToken,
    ConsentStatus,
    DurationType,
    Initiator,
    PartnerStatus,
    PartnerSubject,
    RevocationReason,
)
from consents.services.apps import app_grant_revoke

GRANT_STATUSES = ["ACTIVE", "REVOKED", "EXPIRED"]
GRANT_DURATION_TYPES = ["ONE_TIME", "PERSISTENT", "TIME_BOUND"]
GRANT_REVOCATION_REASONS = ["BUSINESS_RULE", "USER_ACTION", "EXPIRED", "ACCOUNT_DELETED"]
REVOCATION_REQUEST_REASONS = ["BUSINESS_RULE", "USER_ACTION"]
# FDX names the party that ended a consent; ours map onto its party types.
INITIATORS = {
    Initiator.CONSUMER: "INDIVIDUAL",
    Initiator.PARTNER: "DATA_RECIPIENT",
    Initiator.STAFF: "DATA_PROVIDER",
    Initiator.SYSTEM: "DATA_PROVIDER",
}
GRANT_INITIATORS = sorted(set(INITIATORS.values()))


@dataclass(frozen=True)
class AppGrantBearer:
    """An access token issued to a connected app under one grant: it may reach that grant only."""

    token_id: int
    partner_id: int
    grant_id: uuid.UUID
    expires: datetime


class GrantAuthentication(PartnerAuthentication):
    """The partner's client-credentials tokens, and the tokens issued to its apps under a grant."""

    # Widens what ``request.auth`` may be; only the grant views, whose permission knows both, use it.
    def authenticate(  # type: ignore[override]
        self, request: Request
    ) -> tuple[AnonymousUser, PartnerToken | AppGrantBearer] | None:
        try:
            return super().authenticate(request)
        except InvalidToken:
            app = self._app_bearer(request)
            if app is None:
                raise
            return app

    def _app_bearer(self, request: Request) -> tuple[AnonymousUser, AppGrantBearer] | None:
        result = OAuth2Authentication.authenticate(self, request)
        if result is None:
            return None
        link = AppGrantToken.objects.select_related("grant__app__partner").filter(access_token_id=result[1].pk).first()
        if link is None or link.grant.app.disabled_at is not None or not link.grant.is_active:
            return None
        partner = link.grant.app.partner
        if partner.status != PartnerStatus.ACTIVE:
            raise PartnerSuspended()
        request.partner = partner  # type: ignore[attr-defined]
        return AnonymousUser(), AppGrantBearer(result[1].pk, partner.pk, link.grant_id, result[1].expires)


class GrantAuthenticationScheme(OpenApiAuthenticationExtension):
    """Either the partner's client-credentials token (with the operation's scopes) or the app's grant token."""

    target_class = "consents.api.grants.GrantAuthentication"
    name = "appGrantToken"

    def get_security_requirement(self, auto_schema: AutoSchema) -> list[dict[str, list[str]]]:
        return [{SECURITY_SCHEME: list(getattr(auto_schema.view, "required_scopes", []))}, {self.name: []}]

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An access token your connected app received under this grant (authorization code flow).",
        }


class GrantAccess(BasePermission):
    """A partner token with the view's scopes, or an app's grant token (checked against the grant id in the view)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if isinstance(request.auth, AppGrantBearer):
            return request.auth.expires > timezone.now()
        return PartnerScopes().has_permission(request, view)


class GrantApi(PartnerApi):
    authentication_classes = [GrantAuthentication]
    permission_classes = [GrantAccess]

    def grant_or_404(self, request: Request, grant_id: str) -> AppGrant:
        """The caller's grant; another partner's, another grant's token or an unknown id are the same 404."""
        try:
            pk = uuid.UUID(grant_id)
        except ValueError:
            raise NotFoundProblem() from None
        auth = request.auth
        if isinstance(auth, AppGrantBearer) and auth.grant_id != pk:
            raise NotFoundProblem()
        assert isinstance(auth, PartnerToken | AppGrantBearer)
        grant = (
            AppGrant.objects.select_related("app__partner", "purpose")
            .prefetch_related("data_categories")
            .filter(pk=pk, app__partner_id=auth.partner_id)
            .first()
        )
        if grant is None:
            raise NotFoundProblem()
        return grant


def _status(grant: AppGrant) -> str:
    if grant.is_active:
        return "ACTIVE"
    if grant.status == ConsentStatus.REVOKED:
        return "REVOKED"
    return "EXPIRED"


def grant_resource(grant: AppGrant) -> dict[str, Any]:
    """The grant as the FDX Consent API shapes a consent grant."""
    partner = grant.app.partner
    subject = PartnerSubject.objects.filter(partner=partner, user_id=grant.user_id).values_list("subject_id", flat=True)
    duration_days = None
    if grant.duration_type == DurationType.TIME_BOUND and grant.expires_at is not None:
        duration_days = max(1, round((grant.expires_at - grant.granted_at).total_seconds() / 86400))
    revocation = None
    if not grant.is_active:
        # A grant past its expiry that the periodic task has not ended yet is expired all the same.
        reason = grant.revocation_reason or RevocationReason.EXPIRED
        initiator = INITIATORS[Initiator(grant.changed_by)] if grant.revocation_reason else "DATA_PROVIDER"
        revocation = {"reason": reason.upper(), "initiator": initiator}
    return {
        "id": str(grant.pk),
        "status": _status(grant),
        "subjectId": subject.first(),
        "parties": [
            {"name": grant.app.name, "type": "DATA_RECIPIENT", "registeredEntityName": partner.name},
            {"name": partner.name, "type": "DATA_RECIPIENT", "registeredEntityId": partner.slug},
            {"name": "Privacy Portal", "type": "DATA_PROVIDER"},
        ],
        "purpose": grant.purpose.slug,
        "dataCategories": sorted(c.slug for c in grant.data_categories.all()),
        "authorization_details": grant.authorization_details,
        "durationType": grant.duration_type.upper(),
        "durationPeriod": duration_days,
        "expirationTime": grant.expires_at,
        "lookbackPeriod": grant.lookback_days,
        "createdTime": grant.granted_at,
        "updatedTime": grant.updated_at,
        "revocationReason": revocation,
    }


class GrantSerializer(serializers.Serializer):
    class PartySerializer(serializers.Serializer):
        name = serializers.CharField()
        type = serializers.ChoiceField(choices=["DATA_RECIPIENT", "DATA_PROVIDER"])
        registeredEntityName = serializers.CharField(required=False)
        registeredEntityId = serializers.CharField(required=False)

    class RevocationSerializer(serializers.Serializer):
        reason = serializers.ChoiceField(choices=GRANT_REVOCATION_REASONS)
        initiator = serializers.ChoiceField(choices=GRANT_INITIATORS)

    id = serializers.UUIDField(help_text="The grant id (also in the token response and in introspection).")
    status = serializers.ChoiceField(choices=GRANT_STATUSES)
    subjectId = serializers.CharField(allow_null=True, help_text="Your pairwise id for the consumer.")
    parties = PartySerializer(many=True)
    purpose = serializers.CharField()
    dataCategories = serializers.ListField(child=serializers.CharField())
    authorization_details = serializers.JSONField(help_text="The RFC 9396 details as the consumer approved them.")
    durationType = serializers.ChoiceField(choices=GRANT_DURATION_TYPES)
    durationPeriod = serializers.IntegerField(allow_null=True, help_text="Days, for TIME_BOUND.")
    expirationTime = serializers.DateTimeField(allow_null=True)
    lookbackPeriod = serializers.IntegerField(allow_null=True, help_text="Days back the app may read.")
    createdTime = serializers.DateTimeField()
    updatedTime = serializers.DateTimeField()
    revocationReason = RevocationSerializer(allow_null=True)


GRANT_ID = OpenApiParameter("grant_id", str, OpenApiParameter.PATH, description="The grant id.")
GRANT_EXAMPLE = OpenApiExample(
    "An active time-bound grant",
    response_only=True,
    value={
        "id": "5b0e3c1e-8f3a-4c55-9d0e-2f1f6c7f9a10",
        "status": "ACTIVE",
        "subjectId": "sub_Q2xq3Jm0bX1",
        "parties": [
            {"name": "Budget Buddy", "type": "DATA_RECIPIENT", "registeredEntityName": "Acme Finance"},
            {"name": "Acme Finance", "type": "DATA_RECIPIENT", "registeredEntityId": "acme-finance"},
            {"name": "Privacy Portal", "type": "DATA_PROVIDER"},
        ],
        "purpose": "budgeting",
        "dataCategories": ["account-balances", "transactions"],
        "authorization_details": [
            {
                "type": "privacy_portal_data_access",
                "purpose": "budgeting",
                "categories": ["account-balances", "transactions"],
                "duration": {"type": "time_bound", "days": 90},
                "lookback_days": 365,
            }
        ],
        "durationType": "TIME_BOUND",
        "durationPeriod": 90,
        "expirationTime": "2026-09-01T10:00:00Z",
        "lookbackPeriod": 365,
        "createdTime": "2026-06-03T10:00:00Z",
        "updatedTime": "2026-06-03T10:00:00Z",
        "revocationReason": None,
    },
)
NOT_FOUND = problem("No such grant for you (another partner's grant answers the same).")


class GrantDetailApi(GrantApi):
    required_scopes = ["consents:read"]

    @extend_schema(
        operation_id="grant_get",
        tags=["grants"],
        summary="Read a connected-app grant",
        description=(
            "What the consumer approved for your app: status, parties, data categories, duration and lookback."
            " Call it with your partner token (scope `consents:read`) for any of your apps' grants, or with an"
            " access token the app received under this grant."
        ),
        parameters=[GRANT_ID],
        responses={200: GrantSerializer, **PROBLEMS_AUTHENTICATED, (404, "application/problem+json"): NOT_FOUND},
        examples=[GRANT_EXAMPLE],
    )
    def get(self, request: Request, grant_id: str) -> Response:
        return Response(GrantSerializer(grant_resource(self.grant_or_404(request, grant_id))).data)


class GrantRevocationApi(GrantApi):
    required_scopes = ["acks:write"]

    class InputSerializer(serializers.Serializer):
        reason = serializers.ChoiceField(
            choices=REVOCATION_REQUEST_REASONS,
            help_text="`USER_ACTION`: the consumer disconnected in your app; `BUSINESS_RULE`: your own decision.",
        )
        note = StrictRegexField(TEXT, max_length=500, required=False, allow_blank=True, default="")

    @extend_schema(
        operation_id="grant_revoke",
        tags=["grants"],
        summary="End a connected-app grant",
        description=(
            "Ends the grant at once and revokes every token issued under it; the consumer sees it under"
            " Past connections and you receive a `consent.revoked` event naming the grant. Ending a grant that"
            " already ended changes nothing. Partner token with scope `acks:write`, or the app's own token."
        ),
        request=InputSerializer,
        parameters=[GRANT_ID],
        examples=[OpenApiExample("The consumer disconnected in the app", value={"reason": "USER_ACTION"})],
        responses={
            204: None,
            **PROBLEMS_WITH_BODY,
            **PROBLEMS_AUTHENTICATED,
            (404, "application/problem+json"): NOT_FOUND,
        },
    )
    def put(self, request: Request, grant_id: str) -> Response:
        grant = self.grant_or_404(request, grant_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        app_grant_revoke(
            grant,
            initiator=Actor.partner(grant.app.partner),
            reason=serializer.validated_data["reason"].lower(),
            note=serializer.validated_data["note"],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
