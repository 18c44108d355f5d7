"""Partner API: the partner's webhook deliveries, a test event, and re-delivery of dead letters.

Scope ``webhooks:manage`` (see ``consents.api.webhooks``). Every id outside the calling partner's
own deliveries, existing or not, answers the same 404 problem.
"""

import uuid
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from consents.api.auth import partner_token
from consents.api.problems import NotFoundProblem, ProblemError
from consents.api.schema import PROBLEMS_AUTHENTICATED, problem
from consents.api.webhooks import NO_ENDPOINT, PROBLEM, WebhookApi, conflict
from consents.errors import DomainError
from consents.models import DeliveryAttempt, DeliveryOutcome, DeliveryStatus, EventType, OutboxEvent
from consents.services.delivery import outbox_event_redrive, partner_dead_letters_redrive
from consents.services.outbox import outbox_webhook_test

DELIVERIES_LIMIT_DEFAULT = 50
DELIVERIES_LIMIT_MAX = 200
DEAD_LETTERS_REDRIVE_MAX = 500

# Named choice sets, so the schema's enums get stable names (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
DELIVERY_STATUSES = DeliveryStatus.values
DELIVERY_OUTCOMES = DeliveryOutcome.values

DELIVERY_NOT_FOUND = problem("No such delivery for you (another partner's delivery answers the same).")
DELIVERY_ID = OpenApiParameter("delivery_id", str, OpenApiParameter.PATH, description="The delivery's (event's) id.")


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
            raise conflict(error) from None
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
            raise conflict(error) from None
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
            event = outbox_webhook_test(partner=self.partner(request), actor=self.actor(request))
        except DomainError as error:
            raise conflict(error) from None
        delivery = delivery_or_404(partner_token(request).partner_id, str(event.pk))
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
