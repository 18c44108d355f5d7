"""The OpenAPI schema: valid, complete, and matched by what the API really answers (schemathesis)."""

import os
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import Case
from schemathesis.config import SchemathesisConfig

from consents.api.selectors import FEED_CURSOR_MAX_LENGTH, FEED_CURSOR_MIN_LENGTH, FEED_CURSOR_PATTERN
from portal.wsgi import application
from tests.conftest import ROOT

OPERATIONS = {
    ("get", "/api/v1/ping"),
    ("get", "/api/v1/subjects/{subject_id}/consents/{purpose}"),
    ("get", "/api/v1/subjects/{subject_id}/consents"),
    ("post", "/api/v1/consents/check"),
    ("get", "/api/v1/events"),
    ("post", "/api/v1/events/{event_id}/ack"),
    ("post", "/api/v1/access-events"),
    ("get", "/api/v1/grants/{grant_id}"),
    ("put", "/api/v1/grants/{grant_id}/revocation"),
    ("get", "/api/v1/webhook"),
    ("put", "/api/v1/webhook"),
    ("post", "/api/v1/webhook/secret/rotation"),
    ("post", "/api/v1/webhook/test"),
    ("get", "/api/v1/webhook/deliveries"),
    ("get", "/api/v1/webhook/deliveries/{delivery_id}"),
    ("post", "/api/v1/webhook/deliveries/{delivery_id}/redelivery"),
    ("post", "/api/v1/webhook/dead-letters/redelivery"),
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
    assert set(flow["scopes"]) == {"consents:read", "events:read", "access:write", "acks:write", "webhooks:manage"}
    paths = openapi["paths"]
    assert paths["/api/v1/events"]["get"]["security"] == [{"partnerOAuth": ["events:read"]}]
    assert paths["/api/v1/events/{event_id}/ack"]["post"]["security"] == [{"partnerOAuth": ["acks:write"]}]
    assert paths["/api/v1/consents/check"]["post"]["security"] == [{"partnerOAuth": ["consents:read"]}]
    assert paths["/api/v1/ping"]["get"].get("security", []) in ([], [{}])
    for path, item in paths.items():
        if path.startswith("/api/v1/webhook"):
            assert all(operation["security"] == [{"partnerOAuth": ["webhooks:manage"]}] for operation in item.values())


def test_schema_gives_examples_for_the_webhook_operations(openapi):
    for path, item in openapi["paths"].items():
        if not path.startswith("/api/v1/webhook"):
            continue
        for operation in item.values():
            success = next(status for status in operation["responses"] if status.startswith("2"))
            assert operation["responses"][success]["content"]["application/json"]["examples"], (path, success)


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


def test_schema_describes_the_feed_cursor_exactly(openapi):
    feed = openapi["paths"]["/api/v1/events"]["get"]
    [after] = [parameter for parameter in feed["parameters"] if parameter["name"] == "after"]
    cursor, empty = after["schema"]["oneOf"]
    assert cursor["pattern"] == FEED_CURSOR_PATTERN
    assert (cursor["minLength"], cursor["maxLength"]) == (FEED_CURSOR_MIN_LENGTH, FEED_CURSOR_MAX_LENGTH)
    assert empty == {"type": "string", "maxLength": 0}
    assert "invalid_cursor" in feed["responses"]["400"]["description"]
    assert feed["responses"]["200"]["links"]["NextPage"]["parameters"] == {"after": "$response.body#/next_cursor"}


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


# How hard schemathesis tries. The suite's default is a CI-sized run of every phase (examples,
# coverage, fuzzing and stateful), derandomised so that it fails the same way twice;
# bench/schemathesis_long.py raises it to 1,000 random cases per operation.
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "50"))
DERANDOMIZE = MAX_EXAMPLES <= 100
RUN = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
    database=None,
)
STATEFUL = hypothesis_settings(RUN, max_examples=max(5, MAX_EXAMPLES // 3), stateful_step_count=6)

# Generated in process (no request, no database) so it can be loaded at collection time; the
# project's schemathesis.toml records the one deliberate exception to the checks.
schema = schemathesis.openapi.from_dict(
    SchemaGenerator().get_schema(request=None, public=True),
    config=SchemathesisConfig.from_path(ROOT / "schemathesis.toml"),
)
schema.app = application


@pytest.fixture
def partner_api(api_world, events_for_schema, wsgi_keeps_the_test_connection, settings):
    """Partner A's token, with its feed holding events, and no throttle in the way of generated requests."""
    settings.PARTNER_API_RATE = "1000000/minute"
    return api_world.a


@schema.parametrize()
@RUN
def test_api_answers_match_the_schema(case, partner_api):
    """Examples, coverage and fuzzing against every operation: no 5xx, every answer documented and conforming."""
    case.call_and_validate(headers=partner_api.headers)


class PartnerApiWorkflow(schema.as_state_machine()):  # type: ignore[misc]
    """Sequences of calls that feed one answer into the next request (an event's id into its ack)."""

    headers: dict[str, str] = {}

    def get_call_kwargs(self, case: Case) -> dict[str, Any]:
        return {"headers": self.headers}


def test_api_workflows_match_the_schema(partner_api):
    """The stateful phase: every step's answer documented and conforming, no 5xx."""
    PartnerApiWorkflow.headers = partner_api.headers
    PartnerApiWorkflow.run(settings=STATEFUL)
