"""Every API error as RFC 9457 problem details (``application/problem+json``).

The body always has ``type``, ``title``, ``status``, ``detail``, a stable machine-readable ``code``
and ``errors`` (the field errors of a validation failure, otherwise empty). Clients should branch
on ``code``; ``title`` and ``detail`` are for people and follow the request's language.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

logger = logging.getLogger("consents.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:privacy-portal:problem:"
# What a lost or refused database connection raises: the database is restarting or unreachable.
DATABASE_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)
# Seconds a client is asked to wait (Retry-After) while the database is unavailable.
DATABASE_RETRY_AFTER_SECONDS = 5

TITLES = {
    400: _("Bad request"),
    401: _("Authentication required"),
    403: _("Forbidden"),
    404: _("Not found"),
    405: _("Method not allowed"),
    406: _("Not acceptable"),
    409: _("Conflict"),
    413: _("Content too large"),
    415: _("Unsupported media type"),
    429: _("Too many requests"),
    500: _("Server error"),
    503: _("Service unavailable"),
}


class ProblemError(exceptions.APIException):
    """An API error with a stable ``code``; raise it from views for anything not covered by DRF."""

    def __init__(self, detail: Any, *, code: str, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(detail, code=code)


class NotFoundProblem(exceptions.NotFound):
    """What anything outside the calling partner's reach answers, existing or not."""

    default_detail = _("There is no such resource for this partner.")
    default_code = "not_found"


class InvalidToken(exceptions.AuthenticationFailed):
    default_detail = _("The access token is invalid, expired or revoked.")
    default_code = "invalid_token"


class PartnerSuspended(exceptions.PermissionDenied):
    default_detail = _("This partner is suspended; its credentials do not work until it is reinstated.")
    default_code = "partner_suspended"


class InsufficientScope(exceptions.PermissionDenied):
    default_detail = _("The access token does not have the scope this endpoint needs.")
    default_code = "insufficient_scope"

    def __init__(self, required: list[str]) -> None:
        super().__init__()
        self.auth_header = f'Bearer error="insufficient_scope", scope="{" ".join(required)}"'


def _field_errors(detail: Any, path: str = "") -> list[dict[str, str]]:
    """Flatten DRF's nested error structure into ``[{field, code, detail}]`` with dotted paths."""
    if isinstance(detail, dict):
        errors = []
        for key, value in detail.items():
            name = "" if key in {"non_field_errors", "detail"} else str(key)
            errors += _field_errors(value, f"{path}.{name}" if path and name else path or name)
        return errors
    if isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail) for item in detail):
            return [{"field": path, "code": item.code or "invalid", "detail": str(item)} for item in detail]
        errors = []
        for index, item in enumerate(detail):
            if item:
                errors += _field_errors(item, f"{path}.{index}" if path else str(index))
        return errors
    return [{"field": path, "code": getattr(detail, "code", None) or "invalid", "detail": str(detail)}]


def problem_body(*, status_code: int, code: str, detail: str, errors: list[dict[str, str]] | None = None) -> dict:
    return {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": str(TITLES.get(status_code, _("Error"))),
        "status": status_code,
        "detail": detail,
        "code": code,
        "errors": errors or [],
    }


def problem_response(
    *, status_code: int, code: str, detail: str, errors: list[dict[str, str]] | None = None
) -> Response:
    return Response(
        problem_body(status_code=status_code, code=code, detail=detail, errors=errors),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def suspicious_request_problem(exc: SuspiciousOperation) -> dict[str, Any]:
    """The problem body for a request Django refused as malformed: too large (413) or too many fields (400)."""
    if isinstance(exc, RequestDataTooBig):
        return problem_body(
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            code="payload_too_large",
            detail=str(_("The request body is larger than this API accepts.")),
        )
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return problem_body(
            status_code=status.HTTP_400_BAD_REQUEST,
            code="too_many_parameters",
            detail=str(_("The request has more parameters than this API accepts.")),
        )
    return problem_body(
        status_code=status.HTTP_400_BAD_REQUEST, code="bad_request", detail=str(_("The request is malformed."))
    )


def database_unavailable_problem() -> dict[str, Any]:
    """The problem body while the database cannot be reached (503, sent with ``Retry-After``)."""
    return problem_body(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        code="database_unavailable",
        detail=str(_("The service cannot reach its database. Retry after the time given in Retry-After.")),
    )


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's handler (headers such as ``WWW-Authenticate`` and ``Retry-After``) with a problem body."""
    if isinstance(exc, DATABASE_UNAVAILABLE_ERRORS):
        logger.warning("database unavailable in %s: %s", context.get("view"), exc)
        set_rollback()
        return Response(
            database_unavailable_problem(),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            content_type=PROBLEM_CONTENT_TYPE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, SuspiciousOperation):
        # Logged as Django logs the ones it refuses itself (outside DRF views).
        security_logger = logging.getLogger(f"django.security.{type(exc).__name__}")
        security_logger.warning(str(exc), extra={"request": context["request"]._request})
        body = suspicious_request_problem(exc)
        return Response(body, status=body["status"], content_type=PROBLEM_CONTENT_TYPE)
    if isinstance(exc, Http404):
        exc = NotFoundProblem()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        # Unexpected: log it like Django would and still answer in the API's error format.
        logger.error("Unhandled error in %s", context.get("view"), exc_info=exc)
        set_rollback()
        return problem_response(
            status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
            code="server_error",
            detail=str(_("Something went wrong on our side. Please try again later.")),
        )
    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc.detail, dict | list):
        code = "invalid"
        detail = str(_("Some fields are not valid."))
        errors = _field_errors(exc.detail)
    else:
        code = exc.detail.code or exc.default_code
        detail = str(exc.detail)
        errors = []
    if code == "throttled":
        detail = str(_("Too many requests from this partner. Retry after the time given in Retry-After."))
    response.data = problem_body(status_code=response.status_code, code=str(code), detail=detail, errors=errors)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response
