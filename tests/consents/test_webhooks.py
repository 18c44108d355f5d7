import ipaddress
import socket
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from consents.models import webhook_secret_generate
from consents.webhook_client import (
    WebhookError,
    address_refusal,
    encode_body,
    parse_retry_after,
    resolve_checked,
    webhook_headers,
    webhook_send,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
BODY = encode_body({"id": "evt", "type": "consent.revoked", "data": {"granted": False}})


@pytest.fixture
def allow_private(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def deny_private(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False


def test_signature_verifies_with_the_standardwebhooks_library():
    headers = webhook_headers(msg_id="msg_1", body=BODY, secrets=[SECRET])

    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(BODY, headers) == {"id": "evt", "type": "consent.revoked", "data": {"granted": False}}
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD_SECRET).verify(BODY, headers)


def test_tampered_body_or_id_fails_verification():
    headers = webhook_headers(msg_id="msg_1", body=BODY, secrets=[SECRET])

    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY.replace("false", "true"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY, {**headers, "webhook-id": "msg_2"})


def test_during_rotation_both_signatures_are_sent_and_each_secret_verifies():
    headers = webhook_headers(msg_id="msg_1", body=BODY, secrets=[SECRET, OLD_SECRET])

    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(sig.startswith("v1,") for sig in signatures)
    assert Webhook(SECRET).verify(BODY, headers)
    assert Webhook(OLD_SECRET).verify(BODY, headers)


def test_generated_secrets_are_standard_base64_the_library_accepts():
    for _ in range(300):
        secret = webhook_secret_generate()
        assert secret.startswith("whsec_")
        headers = webhook_headers(msg_id="m", body="{}", secrets=[secret])
        assert Webhook(secret).verify("{}", headers) == {}


def test_send_posts_signed_json_to_a_real_receiver(allow_private, webhook_receiver):
    response = webhook_send(url=webhook_receiver.url, msg_id="msg_42", body=BODY, secrets=[SECRET])

    assert response.status_code == 200
    assert response.ok
    (received,) = webhook_receiver.requests
    assert received.body == BODY.encode()
    assert received.headers["webhook-id"] == "msg_42"
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["Host"] == f"127.0.0.1:{webhook_receiver.port}"
    assert received.verify(SECRET)["type"] == "consent.revoked"


def test_redirects_are_not_followed(allow_private, webhook_receiver):
    webhook_receiver.respond((302, {"Location": "http://127.0.0.1:9/elsewhere"}))

    response = webhook_send(url=webhook_receiver.url, msg_id="m", body=BODY, secrets=[SECRET])

    assert response.status_code == 302
    assert len(webhook_receiver.requests) == 1


def test_timeout_raises_webhook_error(allow_private, settings, webhook_receiver):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    webhook_receiver.delay = 1.0

    with pytest.raises(WebhookError, match="timed out") as caught:
        webhook_send(url=webhook_receiver.url, msg_id="m", body=BODY, secrets=[SECRET])
    assert not caught.value.refused
    assert caught.value.duration_ms >= 250


def test_connection_refused_raises_webhook_error(allow_private):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes

    with pytest.raises(WebhookError) as caught:
        webhook_send(url=f"http://127.0.0.1:{port}/", msg_id="m", body=BODY, secrets=[SECRET])
    assert not caught.value.refused


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.10/hook",
        "http://169.254.10.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[64:ff9b::a00:1]/hook",
        "http://[2002:a00:1::1]/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://100.64.0.1/hook",
    ],
)
def test_private_loopback_link_local_and_metadata_urls_are_refused(deny_private, url):
    with pytest.raises(WebhookError) as caught:
        resolve_checked(url)
    assert caught.value.refused


def test_refused_url_sends_nothing(deny_private, webhook_receiver):
    with pytest.raises(WebhookError) as caught:
        webhook_send(url=webhook_receiver.url.replace("http://", "https://"), msg_id="m", body=BODY, secrets=[SECRET])

    assert caught.value.refused
    assert "loopback" in caught.value.message
    assert webhook_receiver.requests == []


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "gopher://example.com/", "//x/"])
def test_only_http_and_https_are_allowed(allow_private, url):
    with pytest.raises(WebhookError, match="scheme") as caught:
        resolve_checked(url)
    assert caught.value.refused


@pytest.mark.parametrize("url", ["http://127.0.0.1:8001/hook", "http://localhost/hook", "http://10.1.2.3/"])
def test_private_and_loopback_are_allowed_with_the_development_flag(allow_private, url):
    scheme, _host, addresses, _port = resolve_checked(url)
    assert scheme == "http"
    assert not any(address.is_global for address in addresses)


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://100.100.100.200/"])
def test_metadata_addresses_stay_refused_even_with_the_flag(allow_private, url):
    with pytest.raises(WebhookError, match="metadata"):
        resolve_checked(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.10.10/",
        "https://169.254.0.1/",
        "https://169.254.255.254/",
        "https://[fe80::1]/",
        "https://[febf:ffff::1]/",
        "https://[::ffff:169.254.10.10]/",
    ],
)
def test_link_local_addresses_stay_refused_even_with_the_flag(allow_private, url):
    with pytest.raises(WebhookError, match="link-local") as caught:
        resolve_checked(url)
    assert caught.value.refused


def test_plain_http_is_refused_without_the_development_flag(deny_private, monkeypatch):
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))],
    )
    with pytest.raises(WebhookError, match="use https") as caught:
        resolve_checked("http://partner.example/hook")
    assert caught.value.refused
    assert resolve_checked("https://partner.example/hook")[0] == "https"


def test_plain_http_is_refused_in_production_even_with_the_flag(allow_private, settings):
    settings.PORTAL_ENV = "production"
    with pytest.raises(WebhookError, match="use https") as caught:
        resolve_checked("http://127.0.0.1:8001/hook")
    assert caught.value.refused


def test_a_name_with_any_private_address_is_refused(deny_private, monkeypatch):
    def fake_getaddrinfo(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(WebhookError, match="private"):
        resolve_checked("https://partner.example/hook")


def test_public_address_passes_the_guard(deny_private, monkeypatch):
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))],
    )
    assert resolve_checked("https://partner.example/hook") == (
        "https",
        "partner.example",
        [ipaddress.ip_address("93.184.215.14")],
        443,
    )


def test_connection_is_pinned_to_the_checked_address(allow_private, monkeypatch, webhook_receiver):
    # DNS rebinding: the first answer passes the guard, later answers point elsewhere. The request
    # must go to the first (checked) address, with the original host name in the Host header.
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding_getaddrinfo(host, port, *args, **kwargs):
        if host == "rebind.example":
            address = next(answers, "203.0.113.9")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    response = webhook_send(
        url=f"http://rebind.example:{webhook_receiver.port}/webhooks", msg_id="m", body=BODY, secrets=[SECRET]
    )

    assert response.status_code == 200
    (received,) = webhook_receiver.requests
    assert received.headers["Host"] == f"rebind.example:{webhook_receiver.port}"


def test_embedded_ipv4_is_checked(deny_private):
    assert address_refusal(ipaddress.ip_address("::ffff:10.0.0.1"), allow_private=False)
    assert address_refusal(ipaddress.ip_address("64:ff9b::7f00:1"), allow_private=False)
    assert address_refusal(ipaddress.ip_address("2002:c0a8:101::1"), allow_private=False)
    assert address_refusal(ipaddress.ip_address("2606:4700:4700::1111"), allow_private=False) is None
    assert address_refusal(ipaddress.ip_address("1.1.1.1"), allow_private=False) is None


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    assert parse_retry_after("120", now=now) == timedelta(seconds=120)
    assert parse_retry_after("Sun, 01 Mar 2026 12:10:00 GMT", now=now) == timedelta(minutes=10)
    assert parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now=now) == timedelta(0)
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_next_checked_address_is_tried_when_the_first_refuses_the_connection(
    allow_private, monkeypatch, webhook_receiver
):
    # "localhost" often answers ::1 first while the receiver listens on 127.0.0.1 only.
    def dual_stack(host, port, *args, **kwargs):
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", dual_stack)
    response = webhook_send(
        url=f"http://dual.example:{webhook_receiver.port}/webhooks", msg_id="m", body=BODY, secrets=[SECRET]
    )

    assert response.status_code == 200
    assert len(webhook_receiver.requests) == 1
