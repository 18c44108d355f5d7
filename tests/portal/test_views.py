from unittest import mock

import pytest
from django.db import connection
from django.urls import reverse
from kombu import Connection

from portal.celery import app as celery_app


def test_landing_page_explains_the_portal_to_visitors(client, db):
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Your data, your decision" in body
    assert reverse("account_signup") in body
    assert 'href="#main"' in body, "skip link"


def test_dashboard_shows_the_signed_in_consumer_only_their_own_shell(consumer_client, consumer, other_consumer):
    response = consumer_client.get("/")
    body = response.content.decode()
    assert response.status_code == 200
    assert consumer.email in body
    assert other_consumer.email not in body


def test_landing_page_is_translated_to_simplified_chinese(client, db):
    response = client.get("/", headers={"accept-language": "zh-hans"})
    assert response["Content-Language"] == "zh-hans"
    assert "你的数据" in response.content.decode()


def test_language_switcher_sets_the_language(client, db):
    response = client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert response["Content-Language"] == "zh-hans"


def test_pages_send_a_content_security_policy_with_a_nonce(client, db):
    response = client.get("/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy
    assert "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_healthz_is_ok_when_database_and_broker_answer(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_healthz_is_503_when_the_broker_is_down(client, db):
    unreachable = Connection("redis://127.0.0.1:1/0")
    with mock.patch.object(celery_app, "connection_for_write", return_value=unreachable):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == "error"
    assert response.json()["database"] == "ok"


def test_healthz_is_503_when_the_database_is_down(client, db):
    def broken_cursor(*args, **kwargs):
        raise connection.Database.OperationalError("database is down")

    with mock.patch.object(connection, "cursor", broken_cursor):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "error"


@pytest.mark.parametrize("path", ["/static/js/htmx.min.js", "/static/css/portal.css"])
def test_assets_are_served_locally(client, db, path):
    response = client.get(path)
    assert response.status_code == 200
