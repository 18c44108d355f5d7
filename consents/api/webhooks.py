"""Partner API: self-service on the partner's own webhook endpoint (scope ``webhooks:manage``).

Here: read and change the endpoint URL (checked like the admin's partner form, SSRF guard
included) and rotate the signing secret (the old one keeps signing for
``WEBHOOK_SECRET_OVERLAP_HOURS``). ``consents.api.webhook_deliveries`` has the rest: a signed test
event through the outbox, the partner's deliveries with attempts and status codes, and
re-delivery of one or all dead letters.
"""

from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.fields import get_error_detail
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import Actor
from consents.api.auth import PartnerApi
from consents.api.problems import ProblemError
from consents.api.schema import PROBLEMS_AUTHENTICATED, PROBLEMS_WITH_BODY, problem
from consents.errors import DomainError
from consents.models import WEBHOOKS_MANAGE_SCOPE, Partner
from consents.services.partners import (
    WEBHOOK_URL_MAX_LENGTH,
    partner_webhook_secret_rotate,
    partner_webhook_url_change,
    secret_fingerprint,
)

PROBLEM = "application/problem+json"
NO_ENDPOINT = problem(
    "`no_endpoint`: you have no webhook URL, or it was disabled after answering 410 Gone (staff re-enable it)."
)


class WebhookApi(PartnerApi):
    """Base of the self-service endpoints: the scope, and the calling partner as the actor of its changes."""

    required_scopes = [WEBHOOKS_MANAGE_SCOPE]

    def partner(self, request: Request) -> Partner:
        return cast(Partner, request.partner)  # type: ignore[attr-defined]

    def actor(self, request: Request) -> Actor:
        return Actor.partner(self.partner(request))


def conflict(error: DomainError) -> ProblemError:
    """A refused change as a 409 problem with the service's code and message."""
    return ProblemError(error.message, code=error.code, status_code=status.HTTP_409_CONFLICT)


def _fingerprint(secret: str) -> str | None:
    return secret_fingerprint(secret) if secret else None


class WebhookEndpointSerializer(serializers.Serializer):
    url = serializers.URLField(allow_blank=True, help_text="Where events are POSTed; empty: you read the feed only.")
    disabled_at = serializers.DateTimeField(
        allow_null=True, help_text="Set when your endpoint answered 410 Gone; staff re-enable it."
    )
    secret_fingerprint = serializers.CharField(help_text="A short hash naming the current signing secret.")
    previous_secret_fingerprint = serializers.CharField(
        allow_null=True, help_text="The previous secret's, while deliveries are still signed with it too."
    )
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="When deliveries stop being signed with the previous secret."
    )


def endpoint_resource(partner: Partner) -> dict[str, Any]:
    signing = partner.webhook_signing_secrets(at=timezone.now())
    overlapping = len(signing) > 1
    return {
        "url": partner.webhook_url,
        "disabled_at": partner.webhook_disabled_at,
        "secret_fingerprint": secret_fingerprint(partner.webhook_secret),
        "previous_secret_fingerprint": _fingerprint(partner.webhook_secret_previous) if overlapping else None,
        "previous_secret_expires_at": partner.webhook_secret_previous_expires_at if overlapping else None,
    }


ENDPOINT_EXAMPLE = OpenApiExample(
    "An endpoint during a secret rotation",
    response_only=True,
    value={
        "url": "https://hooks.example.com/privacy-portal",
        "disabled_at": None,
        "secret_fingerprint": "3f9a1c0b7d22",
        "previous_secret_fingerprint": "a81d44e0c9f1",
        "previous_secret_expires_at": "2026-06-04T10:00:00Z",
    },
)


class WebhookEndpointApi(WebhookApi):
    class InputSerializer(serializers.Serializer):
        url = serializers.CharField(
            allow_blank=True,
            max_length=WEBHOOK_URL_MAX_LENGTH,
            trim_whitespace=False,
            help_text=(
                "An `https` URL on the public internet, or empty to stop webhooks and read the feed only. Private,"
                " loopback, link-local and cloud-metadata addresses are refused (`webhook_url_refused`)."
            ),
        )

    @extend_schema(
        operation_id="webhook_get",
        tags=["webhooks"],
        summary="Read your webhook endpoint",
        description="The URL events are sent to, whether it is disabled, and which signing secrets sign them.",
        responses={200: WebhookEndpointSerializer, **PROBLEMS_AUTHENTICATED},
        examples=[ENDPOINT_EXAMPLE],
    )
    def get(self, request: Request) -> Response:
        return Response(WebhookEndpointSerializer(endpoint_resource(self.partner(request))).data)

    @extend_schema(
        operation_id="webhook_update",
        tags=["webhooks"],
        summary="Change your webhook URL",
        description=(
            "Checked as staff's changes are: a valid URL, `https`, and an address on the public internet."
            " Waiting events go to the new URL on their next attempt. The change is recorded in your partner"
            " record's history, which staff see."
        ),
        request=InputSerializer,
        responses={
            200: WebhookEndpointSerializer,
            (400, PROBLEM): problem(
                "`invalid`, with the reason in `errors` (field `url`): `invalid` for a malformed URL,"
                " `webhook_url_refused` for one webhooks may not be sent to, `max_length`."
            ),
            **{key: value for key, value in PROBLEMS_WITH_BODY.items() if key[0] != 400},
            **PROBLEMS_AUTHENTICATED,
        },
        examples=[
            OpenApiExample("A new endpoint", request_only=True, value={"url": "https://hooks.example.com/portal"}),
            ENDPOINT_EXAMPLE,
        ],
    )
    def put(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            partner = partner_webhook_url_change(
                partner=self.partner(request), url=serializer.validated_data["url"], actor=self.actor(request)
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"url": get_error_detail(exc)}) from None
        return Response(WebhookEndpointSerializer(endpoint_resource(partner)).data)


class WebhookSecretRotationApi(WebhookApi):
    class OutputSerializer(serializers.Serializer):
        secret = serializers.CharField(help_text="The new signing secret (`whsec_…`). Shown this once: store it now.")
        secret_fingerprint = serializers.CharField()
        previous_secret_fingerprint = serializers.CharField()
        previous_secret_expires_at = serializers.DateTimeField(
            help_text="Until then deliveries carry a signature by each secret; verify with either."
        )

    @extend_schema(
        operation_id="webhook_secret_rotate",
        tags=["webhooks"],
        summary="Rotate your signing secret",
        description=(
            "Issues a new signing secret and returns it once. For an overlap"
            f" ({settings.WEBHOOK_SECRET_OVERLAP_HOURS} hours) every delivery's `webhook-signature` holds a"
            " signature by the new and by the old secret, so you can"
            " deploy the new one without missing a webhook; after that only the new one signs. Rotating again"
            " during the overlap retires the old secret at once."
        ),
        request=None,
        responses={201: OutputSerializer, **PROBLEMS_AUTHENTICATED},
        examples=[
            OpenApiExample(
                "A new secret",
                response_only=True,
                status_codes=["201"],
                value={
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    "secret_fingerprint": "3f9a1c0b7d22",
                    "previous_secret_fingerprint": "a81d44e0c9f1",
                    "previous_secret_expires_at": "2026-06-04T10:00:00Z",
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        partner = partner_webhook_secret_rotate(partner=self.partner(request), actor=self.actor(request))
        response = Response(
            {
                "secret": partner.webhook_secret,
                "secret_fingerprint": secret_fingerprint(partner.webhook_secret),
                "previous_secret_fingerprint": secret_fingerprint(partner.webhook_secret_previous),
                "previous_secret_expires_at": partner.webhook_secret_previous_expires_at,
            },
            status=status.HTTP_201_CREATED,
        )
        add_never_cache_headers(response)
        return response
