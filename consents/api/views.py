"""The partner API: one view per action, everything scoped to the calling partner.

Authentication, scopes and throttling come from ``PartnerApi``; no view repeats them. Responses
are built from the selectors' ``ConsentState.as_json()`` — the output serializers describe them
for the OpenAPI schema (the bulk check renders up to 1,000 results within its time budget).
"""

import re
import uuid
from typing import Any, TypeGuard

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from consents.api.auth import PartnerApi, consent_state_for, partner_token
from consents.api.fields import IDENTIFIER, TEXT, StrictRegexField
from consents.api.problems import NotFoundProblem, ProblemError
from consents.api.schema import PROBLEMS_AUTHENTICATED, PROBLEMS_WITH_BODY, problem
from consents.api.selectors import (
    FEED_CURSOR_MAX_LENGTH,
    FEED_CURSOR_MIN_LENGTH,
    FEED_CURSOR_PATTERN,
    STATUS_NONE,
    STATUS_NOT_FOUND,
    STATUS_NOT_REQUIRED,
    consent_states_bulk,
    feed_cursor_decode,
    feed_cursor_encode,
    feed_page,
    subject_consent_states,
)
from consents.models import ConsentStatus, EventType, LegalBasis, OutboxEvent
from consents.models.outbox import AckStatus
from consents.services.feed import EventAckConflict, outbox_event_ack, outbox_feed_sequence
from portal.replica import replica_reads

BULK_CHECK_MAX = 1_000
BULK_IDENTIFIER_MAX = 64
# IDENTIFIER matched whole (``fullmatch``): its ``$`` would let a trailing newline through, which the
# serializer strips before matching.
_BULK_IDENTIFIER = re.compile(IDENTIFIER.removeprefix("^").removesuffix("$"))
FEED_LIMIT_DEFAULT = 100
FEED_LIMIT_MAX = 500

# Named choice sets, so the schema's enums get stable names (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
CONSENT_STATE_STATUSES = [*ConsentStatus.values, STATUS_NONE, STATUS_NOT_REQUIRED]
CHECK_RESULT_STATUSES = [*CONSENT_STATE_STATUSES, STATUS_NOT_FOUND]
EVENT_CONSENT_STATUSES = ConsentStatus.values
ACK_STATUSES = AckStatus.values
EVENT_TYPES = EventType.values

SUBJECT_ID = OpenApiParameter(
    "subject_id", str, OpenApiParameter.PATH, description="Your pairwise id for the consumer (`sub_…`)."
)
PURPOSE = OpenApiParameter("purpose", str, OpenApiParameter.PATH, description="The purpose's identifier (slug).")


def _bulk_identifier(value: Any) -> TypeGuard[str]:
    return type(value) is str and len(value) <= BULK_IDENTIFIER_MAX and _BULK_IDENTIFIER.fullmatch(value) is not None


def bulk_pairs_plain(data: Any) -> list[tuple[str, str]] | None:
    """The (subject id, purpose) pairs of a well-formed bulk check, or ``None`` if anything is off.

    The serializer's field-by-field validation cost about 18 of the 24 ms a 1,000-pair check took
    (measured 2026-12-02). A request every item of which is already what the serializer would
    accept unchanged (two strings matching ``IDENTIFIER``, at most ``BULK_IDENTIFIER_MAX`` long) is
    read here; anything else (``None``) goes through the serializer, which accepts it or says why
    not. Unknown keys are ignored, as the serializer ignores them.
    """
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    pairs = []
    for item in items:
        if not isinstance(item, dict):
            return None
        subject_id, purpose = item.get("subject_id"), item.get("purpose")
        if not (_bulk_identifier(subject_id) and _bulk_identifier(purpose)):
            return None
        pairs.append((subject_id, purpose))
    return pairs


class ConsentStateSerializer(serializers.Serializer):
    """One consent answer. ``granted`` is the only field a partner needs to decide."""

    subject_id = serializers.CharField()
    purpose = serializers.CharField()
    status = serializers.ChoiceField(
        choices=CONSENT_STATE_STATUSES,
        help_text=(
            "`granted`, `revoked`, `expired`, `reconsent_required`; `none` when the consumer never decided;"
            " `not_required` when the purpose's legal basis is not consent."
        ),
    )
    granted = serializers.BooleanField(
        help_text="True only for an active consent (granted and not past `expires_at`) or a non-consent legal basis."
    )
    legal_basis = serializers.ChoiceField(choices=LegalBasis.values)
    notice_version = serializers.IntegerField(allow_null=True, help_text="The notice version consented to.")
    granted_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class PingApi(APIView):
    """A bare endpoint without authentication: liveness, and the baseline of the benchmark."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    class OutputSerializer(serializers.Serializer):
        status = serializers.CharField()

    @extend_schema(
        auth=[], responses={200: OutputSerializer}, operation_id="ping", tags=["service"], summary="Liveness check"
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ConsentCheckApi(PartnerApi):
    required_scopes = ["consents:read"]
    # The API's hottest path: the token's live state and the consent in one statement.
    live_state_combined = True

    @extend_schema(
        operation_id="consent_check",
        tags=["consents"],
        summary="Check one consent",
        description="May you use this consumer's data for this purpose now? Use `granted`.",
        parameters=[SUBJECT_ID, PURPOSE],
        responses={
            200: ConsentStateSerializer,
            **PROBLEMS_AUTHENTICATED,
            (404, "application/problem+json"): problem("No such subject or purpose for you."),
        },
    )
    def get(self, request: Request, subject_id: str, purpose: str) -> Response:
        state = consent_state_for(request, subject_id=subject_id, purpose=purpose)
        if state is None:
            raise NotFoundProblem()
        return Response(state.as_json())


class SubjectConsentsApi(PartnerApi):
    required_scopes = ["consents:read"]

    class OutputSerializer(serializers.Serializer):
        subject_id = serializers.CharField()
        consents = ConsentStateSerializer(many=True)

    @extend_schema(
        operation_id="subject_consents",
        tags=["consents"],
        summary="A subject's consents",
        description="Every purpose you receive this consumer's data for, with the consumer's decision.",
        parameters=[SUBJECT_ID],
        responses={
            200: OutputSerializer,
            **PROBLEMS_AUTHENTICATED,
            (404, "application/problem+json"): problem("No such subject for you."),
        },
    )
    def get(self, request: Request, subject_id: str) -> Response:
        states = subject_consent_states(partner_id=partner_token(request).partner_id, subject_id=subject_id)
        if states is None:
            raise NotFoundProblem()
        return Response({"subject_id": subject_id, "consents": [state.as_json() for state in states]})


class BulkConsentCheckApi(PartnerApi):
    required_scopes = ["consents:read"]

    class InputSerializer(serializers.Serializer):
        class ItemSerializer(serializers.Serializer):
            subject_id = StrictRegexField(
                IDENTIFIER, max_length=BULK_IDENTIFIER_MAX, help_text="Your pairwise id for the consumer."
            )
            purpose = StrictRegexField(
                IDENTIFIER, max_length=BULK_IDENTIFIER_MAX, help_text="The purpose's identifier."
            )

        items = serializers.ListField(child=ItemSerializer(), max_length=BULK_CHECK_MAX)

    class OutputSerializer(serializers.Serializer):
        class ResultSerializer(ConsentStateSerializer):
            status = serializers.ChoiceField(
                choices=CHECK_RESULT_STATUSES,
                help_text="As for a single check, or `not_found` for a subject or purpose that is not yours.",
            )
            legal_basis = serializers.ChoiceField(choices=LegalBasis.values, allow_null=True)

        results = ResultSerializer(many=True)

    @extend_schema(
        operation_id="consent_check_bulk",
        tags=["consents"],
        summary="Check many consents",
        description=f"Up to {BULK_CHECK_MAX:,} (subject, purpose) pairs; one result per pair, in order.",
        request=InputSerializer,
        responses={200: OutputSerializer, **PROBLEMS_WITH_BODY, **PROBLEMS_AUTHENTICATED},
    )
    def post(self, request: Request) -> Response:
        items = request.data.get("items") if isinstance(request.data, dict) else None
        if isinstance(items, list) and len(items) > BULK_CHECK_MAX:
            raise ProblemError(
                _("At most %(max)d pairs can be checked at once; split the request.") % {"max": BULK_CHECK_MAX},
                code="too_many_items",
                status_code=status.HTTP_400_BAD_REQUEST,
            )
        pairs = bulk_pairs_plain(request.data)
        if pairs is None:  # something is wrong with it: the serializer says what
            serializer = self.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            pairs = [(item["subject_id"], item["purpose"]) for item in serializer.validated_data["items"]]
        states = consent_states_bulk(partner_id=partner_token(request).partner_id, pairs=pairs)
        return Response({"results": [state.as_json() for state in states]})


class ConsentEventDataSerializer(serializers.Serializer):
    subject_id = serializers.CharField()
    purpose = serializers.CharField()
    status = serializers.ChoiceField(choices=EVENT_CONSENT_STATUSES)
    granted = serializers.BooleanField()
    notice_version = serializers.IntegerField(allow_null=True)
    granted_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(allow_null=True)


class ErasureEventDataSerializer(serializers.Serializer):
    subject_id = serializers.CharField()
    request_id = serializers.CharField()
    due_at = serializers.DateTimeField()


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="EventData",
        serializers=[ConsentEventDataSerializer, ErasureEventDataSerializer],
        resource_type_field_name=None,
    )
)
class EventDataField(serializers.JSONField):
    pass


class EventSerializer(serializers.Serializer):
    """The same object a webhook delivers."""

    id = serializers.UUIDField(help_text="The event id; also the webhook's `webhook-id`. Acknowledge with it.")
    type = serializers.ChoiceField(choices=EVENT_TYPES)
    timestamp = serializers.DateTimeField(help_text="When the change happened (UTC).")
    data = EventDataField()  # type: ignore[assignment]  # a field, not Serializer.data


class EventFeedApi(PartnerApi):
    required_scopes = ["events:read"]

    class InputSerializer(serializers.Serializer):
        # Blank means "from the beginning"; the schema says so as a second, empty alternative.
        after = StrictRegexField(
            FEED_CURSOR_PATTERN,
            required=False,
            allow_blank=True,
            min_length=FEED_CURSOR_MIN_LENGTH,
            max_length=FEED_CURSOR_MAX_LENGTH,
            help_text=(
                "`next_cursor` of the previous page; omitted or empty to start from the beginning. An opaque,"
                f" signed string of {FEED_CURSOR_MIN_LENGTH} to {FEED_CURSOR_MAX_LENGTH} URL-safe base64 characters:"
                " one that matches the pattern but was not issued to you is refused with 400 `invalid_cursor`."
            ),
        )
        limit = serializers.IntegerField(
            required=False, min_value=1, max_value=FEED_LIMIT_MAX, default=FEED_LIMIT_DEFAULT
        )

    class OutputSerializer(serializers.Serializer):
        events = EventSerializer(many=True)
        next_cursor = serializers.CharField(help_text="Pass as `after` to get the events that follow.")

    @extend_schema(
        operation_id="events_list",
        tags=["events"],
        summary="Event feed",
        description=(
            "Your consent and erasure events in commit order. Start without `after`, then pass each page's"
            " `next_cursor`; an empty page returns the same cursor, so poll with it. The cursor is opaque and"
            " stable: an event that commits late is still delivered after it."
        ),
        parameters=[InputSerializer],
        responses={
            200: OutputSerializer,
            (400, "application/problem+json"): problem(
                "`invalid`: `limit` or `after` outside what this schema allows (listed in `errors`)."
                " `invalid_cursor`: `after` has the cursor's form but is not a `next_cursor` this API gave you"
                " (cursors are signed and bound to your partner account)."
            ),
            **PROBLEMS_AUTHENTICATED,
        },
    )
    def get(self, request: Request) -> Response:
        # A plain dict, not the QueryDict: DRF would read an empty "limit=" as "not given".
        params = self.InputSerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        partner_id = partner_token(request).partner_id
        after = 0
        if cursor := params.validated_data.get("after"):
            try:
                after = feed_cursor_decode(partner_id=partner_id, cursor=cursor)
            except ValueError:
                raise ProblemError(
                    _("The cursor is not valid. Use a next_cursor this API gave you, or start without one."),
                    code="invalid_cursor",
                    status_code=status.HTTP_400_BAD_REQUEST,
                ) from None
        outbox_feed_sequence()
        with replica_reads():  # a lagging replica shows a prefix of the feed: the cursor never skips an event
            page = feed_page(partner_id=partner_id, after=after, limit=params.validated_data["limit"])
        last = page[-1][0] if page else after
        return Response(
            {
                "events": [payload for _seq, payload in page],
                "next_cursor": feed_cursor_encode(partner_id=partner_id, seq=last),
            }
        )


class EventAckApi(PartnerApi):
    required_scopes = ["acks:write"]

    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=ACK_STATUSES)
        detail = StrictRegexField(
            TEXT, max_length=1000, required=False, allow_blank=True, default="", trim_whitespace=False
        )

    class OutputSerializer(serializers.Serializer):
        event_id = serializers.UUIDField()
        status = serializers.ChoiceField(choices=ACK_STATUSES)
        detail = serializers.CharField(allow_blank=True)
        acknowledged_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="event_ack",
        tags=["events"],
        summary="Acknowledge an event",
        description=(
            "Tell us you acted on an event (`processed`) or could not (`failed`, with a detail). Sending the same"
            " acknowledgement again changes nothing; `failed` can later become `processed`, but not the reverse."
        ),
        request=InputSerializer,
        parameters=[OpenApiParameter("event_id", str, OpenApiParameter.PATH, description="The event's `id`.")],
        responses={
            200: OutputSerializer,
            **PROBLEMS_WITH_BODY,
            **PROBLEMS_AUTHENTICATED,
            (404, "application/problem+json"): problem("No such event for you."),
            (409, "application/problem+json"): problem("Already acknowledged as processed."),
        },
    )
    def post(self, request: Request, event_id: str) -> Response:
        try:
            event_uuid = uuid.UUID(event_id)
        except ValueError:
            raise NotFoundProblem() from None
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            event = outbox_event_ack(
                partner=request.partner,  # type: ignore[attr-defined]
                event_id=event_uuid,
                status=serializer.validated_data["status"],
                detail=serializer.validated_data["detail"],
            )
        except OutboxEvent.DoesNotExist:
            raise NotFoundProblem() from None
        except EventAckConflict as error:
            raise ProblemError(error.message, code=error.code, status_code=status.HTTP_409_CONFLICT) from None
        output = self.OutputSerializer(
            {
                "event_id": event.pk,
                "status": event.ack_status,
                "detail": event.ack_detail,
                "acknowledged_at": event.acked_at,
            }
        )
        return Response(output.data)


class NotFoundApi(APIView):
    """Any other path under the API: a problem-details 404 rather than the site's HTML page."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []
    schema = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        raise NotFoundProblem()
