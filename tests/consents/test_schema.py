"""The OpenAPI schema: valid, complete, and matched by what the API really answers (schemathesis)."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from portal.wsgi import application

OPERATIONS = {
    ("get", "/api/v1/ping"),
    ("get", "/api/v1/subjects/{subject_id}/consents/{purpose}"),
    ("get", "/api/v1/subjects/{subject_id}/consents"),
    ("post", "/api/v1/consents/check"),
    ("get", "/api/v1/events"),
    ("post", "/api/v1/events/{event_id}/ack"),
    ("post", "/api/v1/access-events"),
}


@pytest.fixture
def openapi(db) -> dict:
    response = Client().get("/api/schema/", headers={"accept": "application/vnd.oai.openapi+json"})
    assert response.status_code == 200
    return response.json()


def test_schema_is_valid_openapi_3(openapi):
    validate_schema(openapi)
    assert openapi["openapi"].startswith("3.")


def test_schema_documents_every_endpoint(openapi):
    documented = {(method, path) for path, item in openapi["paths"].items() for method in item}
    assert documented == OPERATIONS


def test_schema_documents_the_client_credentials_scheme_and_scopes(openapi):
    scheme = openapi["components"]["securitySchemes"]["partnerOAuth"]
    flow = scheme["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/oauth/token/"
    assert set(flow["scopes"]) == {"consents:read", "events:read", "access:write", "acks:write"}
    paths = openapi["paths"]
    assert paths["/api/v1/events"]["get"]["security"] == [{"partnerOAuth": ["events:read"]}]
    assert paths["/api/v1/events/{event_id}/ack"]["post"]["security"] == [{"partnerOAuth": ["acks:write"]}]
    assert paths["/api/v1/consents/check"]["post"]["security"] == [{"partnerOAuth": ["consents:read"]}]
    assert paths["/api/v1/ping"]["get"].get("security", []) in ([], [{}])


def test_schema_documents_problem_details_for_errors(openapi):
    for path, item in openapi["paths"].items():
        if path == "/api/v1/ping":
            continue
        for operation in item.values():
            for status in ("401", "403", "429"):
                content = operation["responses"][status]["content"]
                assert content == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    problem = openapi["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code", "errors"}


def test_docs_page_and_schema_are_public(client, db):
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/schema/").status_code == 200


@pytest.fixture
def events_for_schema(api_world):
    from tests.factories import outbox_event_create

    for consumer in (api_world.alice, api_world.bob):
        outbox_event_create(partner=api_world.a.partner, user=consumer, purpose=api_world.marketing)
    outbox_event_create(partner=api_world.a.partner, user=api_world.alice, event_type="subject.erasure_requested")


@pytest.fixture
def wsgi_keeps_the_test_connection():
    """Like Django's test client: the WSGI app must not close the connection holding the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# Generated in process (no request, no database) so it can be loaded at collection time.
schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.app = application


@schema.parametrize()
@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_answers_match_the_schema(case, api_world, events_for_schema, wsgi_keeps_the_test_connection, settings):
    """Generated requests against every operation: no 5xx, every answer documented and conforming."""
    settings.PARTNER_API_RATE = "100000/minute"
    # A feed cursor is opaque: a string the schema allows but this API never issued is rightly refused.
    excluded = [positive_data_acceptance] if case.operation.path == "/api/v1/events" else []
    case.call_and_validate(headers=api_world.a.headers, excluded_checks=excluded)
