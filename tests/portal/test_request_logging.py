"""The request id and the request line: JSON shape, propagation into tasks and webhooks, nothing personal."""

import io
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.urls import reverse

from audit.services import Actor
from consents.models import OutboxEvent, Purpose
from consents.services.consents import consent_grant
from portal.env import ed25519_pem
from portal.logs import JsonFormatter, RequestIdFilter
from portal.request_id import current_request_id, request_id_bind
from tests.conftest import ROOT
from tests.factories import PartnerFactory, SharingFactory
from tests.portal.celery_tasks import request_id_note

REQUEST_LINE_KEYS = {"time", "level", "logger", "message", "request_id", "method", "route", "status", "duration_ms"}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(saved)


def lines_of(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def request_lines(stream: io.StringIO) -> list[dict]:
    return [line for line in lines_of(stream) if line["logger"] == "portal.request"]


def test_each_request_logs_one_json_line_with_its_route_and_echoed_id(client, db, captured):
    response = client.get(reverse("healthz"))

    (line,) = request_lines(captured)
    assert set(line) == REQUEST_LINE_KEYS
    assert (line["level"], line["method"], line["route"], line["status"]) == ("INFO", "GET", "/healthz", 200)
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert re.fullmatch(r"[0-9a-f]{32}", line["request_id"])
    assert response["X-Request-ID"] == line["request_id"]
    assert line["time"].endswith("+00:00")


def test_each_request_gets_its_own_id_and_none_leaks_past_it(client, db, captured):
    first = client.get(reverse("healthz"))["X-Request-ID"]
    second = client.get(reverse("healthz"))["X-Request-ID"]
    assert first != second
    assert current_request_id() is None
    logging.getLogger("portal.tests").info("between requests")
    assert lines_of(captured)[-1]["request_id"] == "-"


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("4bf92f3577b34da6a3ce929d0e0e4736", True),
        ("lb-7f3a:2026-05-14.123_abc", True),
        ("short", False),
        ("x" * 129, False),
        ("abc12345\nlevel=ERROR forged", False),
        ('abc12345" injected="1', False),
    ],
)
def test_an_incoming_request_id_is_kept_only_if_it_looks_like_an_id(client, db, captured, incoming, kept):
    response = client.get(reverse("healthz"), headers={"x-request-id": incoming})
    (line,) = request_lines(captured)
    assert line["request_id"] == response["X-Request-ID"]
    assert (response["X-Request-ID"] == incoming) is kept


def test_request_lines_name_no_path_query_string_address_or_email(client, consumer, captured):
    email = "zq-private@example.com"
    address = "198.51.100.23"
    probe = uuid.uuid4().hex
    client.force_login(consumer)
    client.get(f"/consents/{probe}/card/?email={email}&q={probe}", REMOTE_ADDR=address)
    client.get(f"/no-such-page/{probe}/?email={email}", REMOTE_ADDR=address)
    client.get(f"/requests/{uuid.uuid4()}/?email={email}", REMOTE_ADDR=address)

    text = captured.getvalue()
    assert len(request_lines(captured)) == 3
    for secret in (email, "zq-private", address, probe, "?"):
        assert secret not in text
    routes = {line["route"] for line in request_lines(captured)}
    assert routes <= {"/consents/<slug:slug>/card/", "<unmatched>", "/requests/<uuid:pk>/"}


def test_a_record_carrying_the_request_object_serialises_none_of_it(rf):
    request = rf.get("/consents/?email=zq-private@example.com", HTTP_COOKIE="sessionid=abc")
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Internal Server Error", None, None)
    record.request = request
    record.status_code = 500
    line = json.loads(JsonFormatter().format(record))
    assert set(line) == {"time", "level", "logger", "message", "request_id"}
    assert "zq-private" not in json.dumps(line)


# --- Into tasks and webhooks ------------------------------------------------------------------


@pytest.mark.usefixtures("celery_eager")
def test_an_eager_task_runs_under_its_callers_request_id(db):
    request_id_bind("req-eager-0001")
    try:
        assert request_id_note.delay(f"test:{uuid.uuid4()}").get() == "req-eager-0001"
    finally:
        request_id_bind(None)


# Transactional, so that the delivery is queued when the view's transaction commits, inside the
# request, as in production (a test transaction would defer it past the request's end).
def test_a_withdrawal_sends_its_request_id_with_the_webhook_and_the_signed_body_is_unchanged(
    transactional_db, consumer_client, consumer, consent_catalogue, webhook_receiver, celery_eager, settings
):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    purpose = Purpose.objects.get(slug="personalised-offers")
    partner = PartnerFactory(slug="hooked", webhook_url=webhook_receiver.url)
    SharingFactory(partner=partner, purpose=purpose)
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    webhook_receiver.requests.clear()

    response = consumer_client.post(
        reverse("consents:withdraw", args=[purpose.slug]), headers={"x-request-id": "withdraw-req-42"}
    )
    assert response.status_code in {200, 302}
    assert response["X-Request-ID"] == "withdraw-req-42"

    (received,) = [r for r in webhook_receiver.requests if json.loads(r.body)["type"] == "consent.revoked"]
    assert received.headers["X-Request-ID"] == "withdraw-req-42"
    event = OutboxEvent.objects.get(partner=partner, event_type="consent.revoked")
    assert received.verify(partner.webhook_secret) == event.payload


@pytest.mark.worker
def test_a_real_worker_runs_a_task_under_the_id_of_the_request_that_queued_it(celery_worker_process):
    store = redis.Redis.from_url(django_settings.REDIS_URL)
    queued_in_request, queued_outside = f"test:{uuid.uuid4()}", f"test:{uuid.uuid4()}"

    request_id_bind("req-worker-0042")
    try:
        request_id_note.delay(queued_in_request)
    finally:
        request_id_bind(None)
    task = request_id_note.delay(queued_outside)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (store.exists(queued_in_request) and store.exists(queued_outside)):
        assert celery_worker_process.poll() is None, "the worker died"
        time.sleep(0.2)
    assert store.get(queued_in_request) == b"req-worker-0042"
    # Queued outside any request: the task's own id.
    assert store.get(queued_outside) == task.id.encode()


# --- Production's default ---------------------------------------------------------------------


def test_production_logs_json_lines_by_default(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "LOG_FORMAT"}}
    env |= {
        "PORTAL_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "AUDIT_HMAC_KEY": secrets.token_hex(32),
        "RECEIPT_SIGNING_KEY": ed25519_pem(),
        "CLIENT_SECRET_HMAC_KEY": secrets.token_hex(32),
        "WEBHOOK_SECRET_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "portal.example.com",
        "PORTAL_VAR_DIR": str(tmp_path),
    }
    script = (
        "from django.test import Client; "
        "Client().get('/no-such-page/42/?email=zq@example.com', secure=True, "
        "HTTP_HOST='portal.example.com', HTTP_X_REQUEST_ID='prod-req-0001')"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (line,) = [line for line in lines if line["logger"] == "portal.request"]
    assert set(line) == REQUEST_LINE_KEYS
    assert (line["request_id"], line["route"], line["status"]) == ("prod-req-0001", "<unmatched>", 404)
    # Django's own "Not Found: /path" is not repeated, and nothing names the path or its query.
    assert "no-such-page" not in result.stderr
    assert "zq@example.com" not in result.stderr
