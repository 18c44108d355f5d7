"""OpenAPI pieces shared by the partner API views: the security scheme and problem responses."""

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from oauth2_provider.settings import oauth2_settings
from rest_framework import serializers

from consents.api.parsers import MAX_JSON_DEPTH
from consents.api.problems import PROBLEM_CONTENT_TYPE

SECURITY_SCHEME = "partnerOAuth"


class PartnerApiSchema(AutoSchema):
    """Names nested serializers after their view, e.g. ``EventFeedApi.OutputSerializer`` → ``EventFeedOutput``."""

    def get_serializer_name(self, serializer: serializers.BaseSerializer, direction: str) -> str:
        parts = type(serializer).__qualname__.split(".")
        return "".join(part.removesuffix("Api").removesuffix("Serializer") for part in parts[:-1]) + parts[-1]


class PartnerAuthenticationScheme(OpenApiAuthenticationExtension):
    """OAuth 2.0 client credentials; each operation lists the scopes it needs."""

    target_class = "consents.api.auth.PartnerAuthentication"
    name = SECURITY_SCHEME
    priority = 1

    def get_security_requirement(self, auto_schema: AutoSchema) -> dict[str, list[str]]:
        return {self.name: list(getattr(auto_schema.view, "required_scopes", []))}

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "oauth2",
            "description": (
                "OAuth 2.0 client credentials (RFC 6749 §4.4). Ask `/oauth/token/` for a token with your client id"
                " and secret (HTTP Basic), then send it as `Authorization: Bearer <token>`. Tokens last one hour."
            ),
            "flows": {
                "clientCredentials": {
                    "tokenUrl": "/oauth/token/",
                    "scopes": dict(oauth2_settings.SCOPES),
                }
            },
        }


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="Dotted path of the field, empty for errors about the whole request.")
    code = serializers.CharField()
    detail = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details."""

    type = serializers.CharField(help_text="A URI naming the kind of problem: `urn:privacy-portal:problem:<code>`.")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(
        help_text=(
            "Stable machine-readable code: `not_authenticated`, `invalid_token`, `partner_suspended`,"
            " `insufficient_scope`, `not_found`, `method_not_allowed`, `parse_error`, `invalid`, `invalid_cursor`,"
            " `too_many_items`, `already_acknowledged`, `unsupported_media_type`, `not_acceptable`, `throttled`,"
            " `payload_too_large`, `too_many_parameters`, `bad_request`."
        )
    )
    errors = FieldErrorSerializer(many=True)  # type: ignore[assignment]  # a field, not Serializer.errors


def problem(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ProblemSerializer, description=description)


PROBLEMS_AUTHENTICATED: dict[Any, Any] = {
    (401, PROBLEM_CONTENT_TYPE): problem("Missing, invalid, expired or revoked access token."),
    (403, PROBLEM_CONTENT_TYPE): problem("The token lacks the scope, or the partner is suspended."),
    (405, PROBLEM_CONTENT_TYPE): problem("Method not allowed."),
    (406, PROBLEM_CONTENT_TYPE): problem("The Accept header asks for a format this API does not produce."),
    (429, PROBLEM_CONTENT_TYPE): problem("Too many requests from this partner; see `Retry-After`."),
}
PROBLEMS_WITH_BODY: dict[Any, Any] = {
    (400, PROBLEM_CONTENT_TYPE): problem(
        f"Malformed JSON, JSON nested more than {MAX_JSON_DEPTH} levels deep, or invalid fields (listed in `errors`)."
    ),
    (413, PROBLEM_CONTENT_TYPE): problem(
        f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes (`payload_too_large`)."
    ),
    (415, PROBLEM_CONTENT_TYPE): problem("The body must be `application/json`."),
}


def feed_links(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Spectacular post-processing hook: OpenAPI links from a feed page to the next page and to an ack.

    They tell partners (and schemathesis's stateful phase) where ``after`` and ``event_id`` come from.
    """
    feed = result["paths"].get("/api/v1/events", {}).get("get")
    if feed is not None:
        feed["responses"]["200"]["links"] = {
            "NextPage": {
                "operationId": "events_list",
                "parameters": {"after": "$response.body#/next_cursor"},
                "description": "The events after this page.",
            },
            "AcknowledgeFirstEvent": {
                "operationId": "event_ack",
                "parameters": {"event_id": "$response.body#/events/0/id"},
                "description": "Acknowledge an event once it is processed.",
            },
        }
    return result
