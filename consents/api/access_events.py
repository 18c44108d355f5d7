"""Partner API: reporting data-access events (``POST /api/v1/access-events``).

Authentication, scopes, throttling and problem details come from the partner API's shared layer.
A structurally broken batch (malformed JSON, wrong types, missing fields, more than 1,000 events)
is refused whole with a 400 problem listing the fields; otherwise every event gets its own result:
created, duplicate (a replay), conflict (the same id with different content) or rejected (unknown
subject, purpose or category, or a time in the future).
"""

import re
from datetime import UTC, datetime
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from audit.models import AccessAction, AccessVerdict
from consents.api.auth import PartnerApi
from consents.api.fields import IDENTIFIER, TEXT, StrictRegexField
from consents.api.problems import ProblemError
from consents.api.schema import PROBLEMS_AUTHENTICATED, PROBLEMS_WITH_BODY
from consents.services.access import AccessReport, access_events_ingest

INGEST_MAX = 1_000
EVENT_ID_MAX = 100
IDENTIFIER_MAX = 64
CATEGORIES_MAX = 20
DETAIL_MAX = 500
_IDENTIFIER = re.compile(IDENTIFIER)
_TEXT = re.compile(TEXT)
_ACTIONS = frozenset(AccessAction.values)
RESULT_STATUSES = ["created", "duplicate", "conflict", "rejected"]


class AccessEventInputSerializer(serializers.Serializer):
    """Documents the request; validation is done by ``_parse`` below, which is far cheaper per item."""

    class EventSerializer(serializers.Serializer):
        event_id = StrictRegexField(
            IDENTIFIER, max_length=EVENT_ID_MAX, help_text="Your own id for this access: the idempotency key."
        )
        subject_id = StrictRegexField(IDENTIFIER, max_length=IDENTIFIER_MAX, help_text="Your pairwise id (`sub_…`).")
        purpose = StrictRegexField(IDENTIFIER, max_length=IDENTIFIER_MAX, help_text="The purpose's identifier.")
        categories = serializers.ListField(
            child=StrictRegexField(IDENTIFIER, max_length=IDENTIFIER_MAX),
            max_length=CATEGORIES_MAX,
            help_text="The data categories used (identifiers).",
        )
        accessed_at = serializers.DateTimeField(help_text="When the data was used, with a time zone.")
        action = serializers.ChoiceField(choices=AccessAction.values)
        detail = StrictRegexField(
            TEXT, max_length=DETAIL_MAX, required=False, allow_blank=True, help_text="Optional, free text."
        )

    events = serializers.ListField(child=EventSerializer(), min_length=1, max_length=INGEST_MAX)


class AccessEventOutputSerializer(serializers.Serializer):
    class ResultSerializer(serializers.Serializer):
        class ErrorSerializer(serializers.Serializer):
            field = serializers.CharField()
            code = serializers.CharField()
            detail = serializers.CharField()

        index = serializers.IntegerField()
        event_id = serializers.CharField()
        status = serializers.ChoiceField(choices=RESULT_STATUSES)
        verdict = serializers.ChoiceField(
            choices=AccessVerdict.values,
            required=False,
            help_text="For created and duplicate events: `covered`, `no_consent` or `outside_sharing`.",
        )
        code = serializers.CharField(required=False, help_text="For conflicts and rejections: a stable code.")
        detail = serializers.CharField(required=False)
        errors = ErrorSerializer(many=True, required=False)  # type: ignore[assignment]

    results = ResultSerializer(many=True)
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    conflicts = serializers.IntegerField()
    rejected = serializers.IntegerField()


def _error(message: Any, code: str = "invalid") -> list[ErrorDetail]:
    return [ErrorDetail(str(message), code=code)]


def _identifier(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and _IDENTIFIER.match(value) is not None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


def _parse_event(item: Any) -> tuple[AccessReport | None, dict[str, list[ErrorDetail]]]:
    if not isinstance(item, dict):
        return None, {"non_field_errors": _error(_("Each event must be a JSON object."))}
    errors: dict[str, list[ErrorDetail]] = {}
    required = _("This field is required.")
    for name, limit in (("event_id", EVENT_ID_MAX), ("subject_id", IDENTIFIER_MAX), ("purpose", IDENTIFIER_MAX)):
        if name not in item:
            errors[name] = _error(required, "required")
        elif not _identifier(item[name], limit):
            errors[name] = _error(_("Letters, digits, '-' and '_' only, at most %(max)d.") % {"max": limit})
    categories = item.get("categories")
    if "categories" not in item:
        errors["categories"] = _error(required, "required")
    elif (
        not isinstance(categories, list)
        or len(categories) > CATEGORIES_MAX
        or not all(_identifier(c, IDENTIFIER_MAX) for c in categories)
    ):
        errors["categories"] = _error(_("A list of at most %(max)d category identifiers.") % {"max": CATEGORIES_MAX})
    accessed_at = _timestamp(item.get("accessed_at"))
    if "accessed_at" not in item:
        errors["accessed_at"] = _error(required, "required")
    elif accessed_at is None:
        errors["accessed_at"] = _error(_("An ISO 8601 date and time with a time zone, e.g. 2026-05-01T12:00:00Z."))
    if "action" not in item:
        errors["action"] = _error(required, "required")
    elif not isinstance(item["action"], str) or item["action"] not in _ACTIONS:
        errors["action"] = _error(_("One of: %(choices)s.") % {"choices": ", ".join(AccessAction.values)})
    detail = item.get("detail", "")
    if not isinstance(detail, str) or len(detail) > DETAIL_MAX or _TEXT.match(detail) is None:
        errors["detail"] = _error(_("Text of at most %(max)d characters.") % {"max": DETAIL_MAX})
    if errors:
        return None, errors
    assert accessed_at is not None
    return (
        AccessReport(
            event_id=item["event_id"],
            subject_id=item["subject_id"],
            purpose=item["purpose"],
            categories=tuple(categories or ()),
            accessed_at=accessed_at,
            action=item["action"],
            detail=detail,
        ),
        {},
    )


def _parse(data: Any) -> list[AccessReport]:
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not events:
        raise ValidationError({"events": _error(_("A non-empty list of access events is required."))})
    if len(events) > INGEST_MAX:
        raise ProblemError(
            _("At most %(max)d events can be reported at once; split the batch.") % {"max": INGEST_MAX},
            code="too_many_items",
            status_code=status.HTTP_400_BAD_REQUEST,
        )
    reports, errors = [], {}
    for index, item in enumerate(events):
        report, item_errors = _parse_event(item)
        if item_errors:
            errors[f"events.{index}"] = item_errors
        elif report is not None:
            reports.append(report)
    if errors:
        raise ValidationError(errors)
    return reports


class AccessEventIngestApi(PartnerApi):
    required_scopes = ["access:write"]

    @extend_schema(
        operation_id="access_events_report",
        tags=["access"],
        summary="Report data accesses",
        description=(
            f"Up to {INGEST_MAX:,} events per call. Idempotent per `event_id`: a replay answers `duplicate` "
            "and changes nothing; the same id with different content answers `conflict`. Every stored event "
            "gets a verdict; accesses without consent or outside your sharing are flagged to the consumer and "
            "to staff. Events for subjects that are not yours are `rejected` like unknown ones."
        ),
        request=AccessEventInputSerializer,
        responses={200: AccessEventOutputSerializer, **PROBLEMS_WITH_BODY, **PROBLEMS_AUTHENTICATED},
    )
    def post(self, request: Request) -> Response:
        reports = _parse(request.data)
        results = access_events_ingest(partner=request.partner, reports=reports)  # type: ignore[attr-defined]
        body: dict[str, Any] = {"results": [], "created": 0, "duplicates": 0, "conflicts": 0, "rejected": 0}
        tally = {"created": "created", "duplicate": "duplicates", "conflict": "conflicts", "rejected": "rejected"}
        for index, result in enumerate(results):
            item = result.as_dict()
            if "fields" in item:
                names = item.pop("fields")
                item["errors"] = [{"field": name, "code": item["code"], "detail": item["detail"]} for name in names]
            body["results"].append({"index": index, **item})
            body[tally[result.status]] += 1
        return Response(body)
