"""While the database is unreachable (PostgreSQL restarting) the portal answers 503 with Retry-After, not 500."""

from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client
from django.urls import reverse

from consents.api.problems import PROBLEM_CONTENT_TYPE

SESSION_LOAD = "django.contrib.sessions.backends.db.SessionStore.load"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware.process_request"


@pytest.fixture
def raising_client(consumer_client: Client) -> Client:
    # As a real server does: an uncaught error becomes handler500's response instead of failing the test.
    consumer_client.raise_request_exception = False
    return consumer_client


@pytest.mark.parametrize("error", [OperationalError("server closed the connection"), InterfaceError("closed")])
def test_a_page_answers_503_with_retry_after_when_the_database_is_gone(raising_client, error):
    with mock.patch(SESSION_LOAD, side_effect=error):
        response = raising_client.get(reverse("consents:list"))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"].startswith("text/html")
    assert "briefly unavailable" in response.content.decode()


def test_the_api_answers_503_problem_details_when_the_database_is_gone(api_partner_factory, client):
    partner = api_partner_factory(slug="acme")
    client.raise_request_exception = False
    with mock.patch("consents.api.auth._live_state", side_effect=OperationalError("down")):
        response = client.get("/api/v1/events", headers=partner.headers)
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert response["Retry-After"] == "5"
    assert response.json()["code"] == "database_unavailable"


def test_the_consent_check_answers_503_too_when_its_one_statement_fails(api_partner_factory, client):
    # The check reads the token's live state in its own statement (live_state_combined): a database
    # outage there is a 503 like anywhere else, not the guard's "answered without checking" 500.
    partner = api_partner_factory(slug="acme")
    client.raise_request_exception = False
    with mock.patch("consents.api.auth.consent_state_live", side_effect=OperationalError("down")):
        response = client.get("/api/v1/subjects/anyone/consents/offers", headers=partner.headers)
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert response.json()["code"] == "database_unavailable"


def test_an_api_path_failing_outside_the_api_views_answers_problem_details_too(raising_client):
    with mock.patch(AUTH_MIDDLEWARE, side_effect=OperationalError("down")):
        response = raising_client.get("/api/v1/events")
    assert response.status_code == 503
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert response.json()["status"] == 503
    assert response["Retry-After"] == "5"


def test_the_oauth_token_endpoint_answers_problem_details_too(raising_client):
    with mock.patch(AUTH_MIDDLEWARE, side_effect=InterfaceError("connection already closed")):
        response = raising_client.post("/oauth/token/", {"grant_type": "client_credentials"})
    assert response.status_code == 503
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE


def test_other_errors_are_still_500(raising_client):
    with mock.patch(SESSION_LOAD, side_effect=ValueError("a bug")):
        response = raising_client.get(reverse("consents:list"))
    assert response.status_code == 500
    assert "Retry-After" not in response
