"""The single consent check reads the caller's live state and the consent in one statement.

Authentication keeps each token's grant in process memory for a few seconds (``GRANT_CACHE_SECONDS``);
the check must still refuse a token revoked, deleted or of a revoked credential, or a suspended
partner, on the very next call, with the same problem as every other endpoint, and without
reading or revealing anything about the consent.
"""

import base64

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from oauth2_provider.models import AccessToken
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from audit.services import Actor
from consents.api.auth import PartnerApi, consent_state_for
from consents.models import PartnerStatus
from consents.services.partners import partner_credential_revoke, partner_resume, partner_suspend

PROBLEM = "application/problem+json"


def check(client, partner, sid: str, purpose: str = "marketing"):
    return client.get(f"/api/v1/subjects/{sid}/consents/{purpose}", headers=partner.headers)


def check_counted(client, partner, sid: str, purpose: str = "marketing"):
    """The check's response and the statements it ran."""
    with CaptureQueriesContext(connection) as queries:
        response = check(client, partner, sid, purpose)
    return response, len(queries)


def revoke_through_the_endpoint(client, partner) -> None:
    basic = base64.b64encode(f"{partner.credential.application.client_id}:{partner.secret}".encode()).decode()
    headers = {"authorization": f"Basic {basic}"}
    response = client.post("/oauth/revoke_token/", {"token": partner.token}, headers=headers)
    assert response.status_code == 200


def delete_token(client, partner) -> None:
    assert AccessToken.objects.filter(application=partner.credential.application).delete()[0] == 1


def revoke_credential(client, partner) -> None:
    partner_credential_revoke(credential=partner.credential, actor=Actor.system("tests"))


ENDINGS = [revoke_through_the_endpoint, delete_token, revoke_credential]


def test_check_is_one_statement_on_a_warm_process(client, api_world):
    sid = api_world.sid("a", "alice")
    assert check(client, api_world.a, sid).status_code == 200  # validates the token, loads the sharings
    response, statements = check_counted(client, api_world.a, sid)
    assert response.status_code == 200
    assert response.json()["granted"] is True
    assert statements == 1


def test_another_partners_subject_stays_not_found_in_one_statement(client, api_world):
    assert check(client, api_world.a, api_world.sid("a", "alice")).status_code == 200
    response, statements = check_counted(client, api_world.a, api_world.sid("b", "alice"))
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "not_found"
    assert statements == 1


@pytest.mark.parametrize("end", ENDINGS, ids=lambda end: end.__name__)
def test_a_token_that_ended_is_refused_on_the_very_next_check(client, api_world, end):
    partner, sid = api_world.a, api_world.sid("a", "alice")
    assert check(client, partner, sid).status_code == 200  # the grant is now cached for seconds
    end(client, partner)

    response, statements = check_counted(client, partner, sid)

    assert statements == 1  # the cached grant, refused by the combined statement itself
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == PROBLEM
    assert response["WWW-Authenticate"].startswith("Bearer")
    # Exactly what an endpoint that checks in authentication answers.
    other = client.get(f"/api/v1/subjects/{sid}/consents", headers=partner.headers)
    assert (other.status_code, other.json()) == (401, response.json())
    assert response.json()["code"] == "invalid_token"
    assert check(client, partner, sid).status_code == 401  # and the grant left the cache


@pytest.mark.parametrize("end", ENDINGS, ids=lambda end: end.__name__)
def test_a_refusal_does_not_depend_on_the_consent(client, api_world, end):
    partner = api_world.a
    assert check(client, partner, api_world.sid("a", "alice")).status_code == 200
    end(client, partner)
    granted = check(client, partner, api_world.sid("a", "alice"))
    withdrawn = check(client, partner, api_world.sid("a", "bob"))
    unknown_subject = check(client, partner, "sub_doesnotexist")
    unshared_purpose = check(client, partner, api_world.sid("a", "alice"), "no-such-purpose")
    answers = {(r.status_code, r.content) for r in (granted, withdrawn, unknown_subject, unshared_purpose)}
    assert len(answers) == 1
    assert granted.status_code == 401


def test_a_suspended_partner_is_refused_on_the_very_next_check_and_back_when_resumed(client, api_world):
    partner, sid = api_world.a, api_world.sid("a", "alice")
    assert check(client, partner, sid).status_code == 200
    partner_suspend(partner=partner.partner, reason="Audit", actor=Actor.system("tests"))

    response, statements = check_counted(client, partner, sid)
    unshared, _statements = check_counted(client, partner, sid, "no-such-purpose")

    assert statements == 1
    assert response.status_code == 403
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "partner_suspended"
    other = client.get(f"/api/v1/subjects/{sid}/consents", headers=partner.headers)
    assert (other.status_code, other.json()) == (403, response.json())
    assert (unshared.status_code, unshared.content) == (403, response.content)
    partner.partner.refresh_from_db()
    partner_resume(partner=partner.partner, reason="Cleared", actor=Actor.system("tests"))
    response, statements = check_counted(client, partner, sid)
    assert (response.status_code, statements) == (200, 1)


def test_other_partners_keep_their_answers_while_one_is_suspended(client, api_world):
    assert check(client, api_world.b, api_world.sid("b", "alice")).status_code == 200
    partner_suspend(partner=api_world.a.partner, reason="Audit", actor=Actor.system("tests"))
    response, statements = check_counted(client, api_world.b, api_world.sid("b", "alice"))
    assert (response.status_code, statements) == (200, 1)
    assert response.json()["granted"] is True


def test_a_malformed_or_unknown_token_is_refused_before_any_consent_is_read(client, api_world):
    for header in ("Bearer ", "Basic dXNlcjpwYXNz", "Bearer not-a-token"):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(
                f"/api/v1/subjects/{api_world.sid('a', 'alice')}/consents/marketing", headers={"authorization": header}
            )
        assert response.status_code == 401
        assert not any("consents_consent" in query["sql"] for query in queries)


def test_scope_is_checked_from_the_cached_grant_without_a_statement(client, api_world, api_partner_factory):
    narrow = api_partner_factory("partner-c", scopes=("events:read",))
    sid = api_world.sid("a", "alice")
    assert check(client, narrow, sid).status_code == 403  # validates and caches the grant
    response, statements = check_counted(client, narrow, sid)
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert statements == 0


def test_endpoints_that_do_not_combine_still_check_the_live_state_in_authentication(client, api_world):
    partner, sid = api_world.a, api_world.sid("a", "alice")
    url = f"/api/v1/subjects/{sid}/consents"
    assert client.get(url, headers=partner.headers).status_code == 200
    partner.partner.status = PartnerStatus.SUSPENDED
    partner.partner.save(update_fields=["status"])
    assert client.get(url, headers=partner.headers).status_code == 403


@pytest.mark.parametrize("method", ["options", "post", "put", "delete", "trace"])
def test_other_methods_on_the_check_check_the_live_state_in_authentication(client, api_world, method):
    partner, url = api_world.a, f"/api/v1/subjects/{api_world.sid('a', 'alice')}/consents/marketing"
    body = {"data": {}, "content_type": "application/json"} if method in {"post", "put"} else {}
    answered = getattr(client, method)(url, headers=partner.headers, **body)
    assert answered.status_code in {200, 405}
    partner_suspend(partner=partner.partner, reason="Audit", actor=Actor.system("tests"))
    refused = getattr(client, method)(url, headers=partner.headers, **body)
    assert refused.status_code == 403
    assert refused.json()["code"] == "partner_suspended"


def test_head_on_the_check_reads_in_one_statement_and_is_refused_the_same(client, api_world):
    partner, url = api_world.a, f"/api/v1/subjects/{api_world.sid('a', 'alice')}/consents/marketing"
    assert client.head(url, headers=partner.headers).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert client.head(url, headers=partner.headers).status_code == 200
    assert len(queries) == 1
    delete_token(client, partner)
    assert client.head(url, headers=partner.headers).status_code == 401


class ForgetfulCheckApi(PartnerApi):
    """Declares that it combines the live state with its read, then answers without reading."""

    required_scopes = ["consents:read"]
    live_state_combined = True

    def get(self, request: Request) -> Response:
        return Response({"granted": True})


class UndeclaredCheckApi(PartnerApi):
    """Reads through the combined selector without declaring it: authentication already checked."""

    required_scopes = ["consents:read"]

    def get(self, request: Request) -> Response:
        state = consent_state_for(request, subject_id="sub_x", purpose="marketing")
        return Response({"found": state is not None})


def test_a_combining_view_that_skips_the_live_check_never_answers(api_world):
    request = APIRequestFactory().get("/forgetful", headers=api_world.a.headers)
    with pytest.raises(ImproperlyConfigured, match="live state"):
        ForgetfulCheckApi.as_view()(request)


def test_a_combining_view_that_skips_the_live_check_never_answers_even_a_suspended_partner(api_world):
    partner_suspend(partner=api_world.a.partner, reason="Audit", actor=Actor.system("tests"))
    request = APIRequestFactory().get("/forgetful", headers=api_world.a.headers)
    with pytest.raises(ImproperlyConfigured, match="live state"):
        ForgetfulCheckApi.as_view()(request)


def test_the_combined_read_serves_only_views_that_declare_it(api_world, caplog):
    request = APIRequestFactory().get("/undeclared", headers=api_world.a.headers)
    response = UndeclaredCheckApi.as_view()(request)
    assert response.status_code == 500
    assert "declare live_state_combined" in caplog.text
