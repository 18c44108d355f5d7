"""Partner API: self-service on the partner's own webhook endpoint (scope ``webhooks:manage``).

Read and change the endpoint URL (checked like the admin's partner form, SSRF guard included),
rotate the signing secret (the old one keeps signing for ``WEBHOOK_SECRET_OVERLAP_HOURS``), send a
signed test event through the outbox, list deliveries with their attempts and status codes, and
re-deliver one or all dead letters. Every id outside the calling partner's own deliveries, existing
or not, answers the same 404 problem.
"""

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.fields import get_error_detail
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import Actor
from consents.api.auth import PartnerApi, partner_token
from consents.api.problems import NotFoundProblem, ProblemError
from consents.api.schema import PROBLEMS_AUTHENTICATED, PROBLEMS_WITH_BODY, problem
from consents.errors import DomainError
from consents.models import (
    WEBHOOKS_MANAGE_SCOPE,
    DeliveryAttempt,
    DeliveryOutcome,
    DeliveryStatus,
    EventType,
    OutboxEvent,
    Partner,
)
from consents.services.delivery import outbox_event_redrive, partner_dead_letters_redrive
from consents.services.outbox import outbox_webhook_test
from consents.services.partners import (
    WEBHOOK_URL_MAX_LENGTH,
    partner_webhook_secret_rotate,
    partner_webhook_url_change,
    secret_fingerprint,
)

DELIVERIES_LIMIT_DEFAULT = 50
DELIVERIES_LIMIT_MAX = 200
DEAD_LETTERS_REDRIVE_MAX = 500

# Named choice sets, so the schema's enums get stable names (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
DELIVERY_STATUSES = DeliveryStatus.values
DELIVERY_OUTCOMES = DeliveryOutcome.values

PROBLEM = "application/problem+json"
NO_ENDPOINT = problem(
    "`no_endpoint`: you have no webhook URL, or it was disabled after answering 410 Gone (staff re-enable it)."
)
DELIVERY_NOT_FOUND = problem("No such delivery for you (another partner's delivery answers the same).")
DELIVERY_ID = OpenApiParameter("delivery_id", str, OpenApiParameter.PATH, description="The delivery's (event's) id.")


class WebhookApi(PartnerApi):
    required_scopes = [WEBHOOKS_MANAGE_SCOPE]

    def partner(self, request: Request) -> Partner:
        return Partner.objects.get(pk=partner_token(request).partner_id)

    def actor(self, request: Request) -> Actor:
        return Actor.partner(request.partner)  # type: ignore[attr-defined]


def _no_endpoint(error: DomainError) -> ProblemError:
    return ProblemError(error.message, code=error.code, status_code=status.HTTP_409_CONFLICT)


def _fingerprint(secret: str) -> str | None:
    return secret_fingerprint(secret) if secret else None


# --- The endpoint ---------------------------------------------------------------------------------


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


# --- Deliveries -----------------------------------------------------------------------------------


class DeliverySerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The event id, also the webhook's `webhook-id`.")
    type = serializers.ChoiceField(source="event_type", choices=EventType.values)
    created_at = serializers.DateTimeField()
    status = serializers.ChoiceField(
        choices=DELIVERY_STATUSES,
        help_text=(
            "`pending`, `retrying`, `delivered`, `dead` (gave up after the last attempt: re-deliver it),"
            " `no_endpoint` (no enabled webhook when it was due: it is in the feed)."
        ),
    )
    attempts = serializers.IntegerField(help_text="Attempts in the current round (reset by a re-delivery).")
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(
        allow_null=True, help_text="Your endpoint's HTTP status on the latest attempt; null if it did not answer."
    )
    last_error = serializers.CharField(allow_blank=True, help_text="What went wrong on the latest failed attempt.")


class DeliveryAttemptSerializer(serializers.Serializer):
    attempted_at = serializers.DateTimeField()
    outcome = serializers.ChoiceField(choices=DELIVERY_OUTCOMES)
    status_code = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True)


DELIVERY_EXAMPLE_VALUE = {
    "id": "0b6f7d1e-54a4-4d55-a3a3-1b0c1f9e6a21",
    "type": "consent.revoked",
    "created_at": "2026-06-03T10:00:00Z",
    "status": "dead",
    "attempts": 8,
    "next_attempt_at": None,
    "delivered_at": None,
    "last_status_code": 503,
    "last_error": "HTTP 503: upstream unavailable",
}


def deliveries_of(partner_id: int) -> QuerySet[OutboxEvent]:
    """The partner's outbox events, each with its latest attempt's status code."""
    latest = DeliveryAttempt.objects.filter(event_id=OuterRef("pk")).order_by("-attempted_at", "-pk")
    return OutboxEvent.objects.filter(partner_id=partner_id).annotate(
        last_status_code=Subquery(latest.values("status_code")[:1])
    )


def delivery_or_404(partner_id: int, delivery_id: str) -> OutboxEvent:
    try:
        pk = uuid.UUID(delivery_id)
    except ValueError:
        raise NotFoundProblem() from None
    event = deliveries_of(partner_id).filter(pk=pk).first()
    if event is None:
        raise NotFoundProblem()
    return event


class DeliveryPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = DELIVERIES_LIMIT_DEFAULT
    page_size_query_param = "limit"
    max_page_size = DELIVERIES_LIMIT_MAX

    def decode_cursor(self, request: Request) -> Any:
        try:
            return super().decode_cursor(request)
        except Exception:
            raise ProblemError(
                _("The cursor is not valid. Use a next or previous link this API gave you."),
                code="invalid_cursor",
                status_code=status.HTTP_400_BAD_REQUEST,
            ) from None


class WebhookDeliveriesApi(WebhookApi):
    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=DELIVERY_STATUSES, required=False, help_text="Only these.")
        limit = serializers.IntegerField(
            required=False, min_value=1, max_value=DELIVERIES_LIMIT_MAX, default=DELIVERIES_LIMIT_DEFAULT
        )
        cursor = serializers.CharField(
            required=False, max_length=200, help_text="From the `next` or `previous` link of a page."
        )

    class OutputSerializer(serializers.Serializer):
        next = serializers.URLField(allow_null=True, help_text="The next (older) page; null on the last.")
        previous = serializers.URLField(allow_null=True)
        results = DeliverySerializer(many=True)

    @extend_schema(
        operation_id="webhook_deliveries_list",
        tags=["webhooks"],
        summary="List your deliveries",
        description=(
            "Your events as webhook deliveries, newest first: status, attempts and your endpoint's latest status"
            " code. Follow `next` for older ones."
        ),
        parameters=[InputSerializer],
        responses={
            200: OutputSerializer,
            (400, PROBLEM): problem("`invalid` (listed in `errors`) or `invalid_cursor`."),
            **PROBLEMS_AUTHENTICATED,
        },
        examples=[
            OpenApiExample(
                "A dead letter",
                response_only=True,
                value={
                    "next": "https://portal.example.com/api/v1/webhook/deliveries?cursor=cD0yMDI2",
                    "previous": None,
                    "results": [DELIVERY_EXAMPLE_VALUE],
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        events = deliveries_of(partner_token(request).partner_id)
        if wanted := params.validated_data.get("status"):
            events = events.filter(status=wanted)
        paginator = DeliveryPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        return Response(
            {
                "next": paginator.get_next_link(),
                "previous": paginator.get_previous_link(),
                "results": DeliverySerializer(page, many=True).data,
            }
        )


class WebhookDeliveryApi(WebhookApi):
    class OutputSerializer(DeliverySerializer):
        attempt_history = DeliveryAttemptSerializer(many=True, help_text="Every attempt, newest first.")

    @extend_schema(
        operation_id="webhook_delivery_get",
        tags=["webhooks"],
        summary="Read one delivery",
        description="One delivery with every attempt: when, the outcome, your endpoint's status code and timing.",
        parameters=[DELIVERY_ID],
        responses={200: OutputSerializer, **PROBLEMS_AUTHENTICATED, (404, PROBLEM): DELIVERY_NOT_FOUND},
        examples=[
            OpenApiExample(
                "A delivery that failed once, then succeeded",
                response_only=True,
                value={
                    **DELIVERY_EXAMPLE_VALUE,
                    "status": "delivered",
                    "attempts": 2,
                    "delivered_at": "2026-06-03T10:00:06Z",
                    "last_status_code": 200,
                    "last_error": "",
                    "attempt_history": [
                        {
                            "attempted_at": "2026-06-03T10:00:06Z",
                            "outcome": "delivered",
                            "status_code": 200,
                            "duration_ms": 84,
                            "error": "",
                        },
                        {
                            "attempted_at": "2026-06-03T10:00:00Z",
                            "outcome": "retry",
                            "status_code": 503,
                            "duration_ms": 120,
                            "error": "HTTP 503",
                        },
                    ],
                },
            )
        ],
    )
    def get(self, request: Request, delivery_id: str) -> Response:
        event = delivery_or_404(partner_token(request).partner_id, delivery_id)
        data = dict(DeliverySerializer(event).data)
        data["attempt_history"] = DeliveryAttemptSerializer(event.delivery_attempts.all(), many=True).data
        return Response(data)


class WebhookDeliveryRedeliveryApi(WebhookApi):
    @extend_schema(
        operation_id="webhook_delivery_redeliver",
        tags=["webhooks"],
        summary="Re-deliver one dead letter",
        description=(
            "Sends a `dead` (or `no_endpoint`) delivery again from the start of the retry schedule. Recorded in"
            " the audit log."
        ),
        parameters=[DELIVERY_ID],
        request=None,
        responses={
            202: DeliverySerializer,
            **PROBLEMS_AUTHENTICATED,
            (404, PROBLEM): DELIVERY_NOT_FOUND,
            (409, PROBLEM): problem(
                "`not_redrivable`: the delivery is not a dead letter (pending, retrying or delivered); `no_endpoint`."
            ),
        },
        examples=[
            OpenApiExample(
                "Queued again",
                response_only=True,
                status_codes=["202"],
                value={**DELIVERY_EXAMPLE_VALUE, "status": "pending", "attempts": 0, "last_error": ""},
            )
        ],
    )
    def post(self, request: Request, delivery_id: str) -> Response:
        partner_id = partner_token(request).partner_id
        event = delivery_or_404(partner_id, delivery_id)
        try:
            outbox_event_redrive(event=event, actor=self.actor(request))
        except DomainError as error:
            raise _no_endpoint(error) from None
        return Response(
            DeliverySerializer(delivery_or_404(partner_id, delivery_id)).data, status=status.HTTP_202_ACCEPTED
        )


class WebhookDeadLettersRedeliveryApi(WebhookApi):
    class OutputSerializer(serializers.Serializer):
        redelivered = serializers.ListField(child=serializers.UUIDField(), help_text="The deliveries queued again.")
        remaining = serializers.IntegerField(help_text="Dead letters left; call again to re-deliver the next batch.")

    @extend_schema(
        operation_id="webhook_dead_letters_redeliver",
        tags=["webhooks"],
        summary="Re-deliver all dead letters",
        description=(
            f"Sends up to {DEAD_LETTERS_REDRIVE_MAX} of your dead letters again (oldest first) from the start of the"
            " retry schedule; `remaining` says how many are left. Recorded in the audit log."
        ),
        request=None,
        responses={202: OutputSerializer, **PROBLEMS_AUTHENTICATED, (409, PROBLEM): NO_ENDPOINT},
        examples=[
            OpenApiExample(
                "Two queued again",
                response_only=True,
                status_codes=["202"],
                value={
                    "redelivered": ["0b6f7d1e-54a4-4d55-a3a3-1b0c1f9e6a21", "5c1e2d3f-0a9b-4c8d-9e7f-6a5b4c3d2e1f"],
                    "remaining": 0,
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        try:
            ids, remaining = partner_dead_letters_redrive(
                partner=self.partner(request), actor=self.actor(request), limit=DEAD_LETTERS_REDRIVE_MAX
            )
        except DomainError as error:
            raise _no_endpoint(error) from None
        return Response({"redelivered": [str(pk) for pk in ids], "remaining": remaining}, status=202)


class WebhookTestApi(WebhookApi):
    @extend_schema(
        operation_id="webhook_test",
        tags=["webhooks"],
        summary="Send a test event",
        description=(
            "Queues a `webhook.test` event to your endpoint, signed and retried like every other event (it is not"
            " in the feed and needs no acknowledgement). Follow it with `webhook_delivery_get`."
        ),
        request=None,
        responses={202: DeliverySerializer, **PROBLEMS_AUTHENTICATED, (409, PROBLEM): NO_ENDPOINT},
        examples=[
            OpenApiExample(
                "Queued",
                response_only=True,
                status_codes=["202"],
                value={
                    **DELIVERY_EXAMPLE_VALUE,
                    "type": "webhook.test",
                    "status": "pending",
                    "attempts": 0,
                    "last_status_code": None,
                    "last_error": "",
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        try:
            event = outbox_webhook_test(partner=self.partner(request))
        except DomainError as error:
            raise _no_endpoint(error) from None
        delivery = delivery_or_404(partner_token(request).partner_id, str(event.pk))
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
