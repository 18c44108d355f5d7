import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from consents.management.commands.demo_partner import DemoPartner, DemoPartnerConfig, config_load
from consents.models import webhook_secret_generate
from consents.webhook_client import encode_body, webhook_headers, webhook_send
from portal.demo.app_client import COOKIE


class FakePortal:
    """Stands in for the partner API's token and acknowledgement endpoints (a real HTTP server)."""

    def __init__(self) -> None:
        self.token_requests: list[dict] = []
        self.acks: list[dict] = []
        self.test_event_requests: list[str] = []
        self.lock = threading.Lock()
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with portal.lock:
                    if self.path == "/oauth/token/":
                        user, _sep, password = (
                            base64.b64decode(self.headers["Authorization"][6:]).decode().partition(":")
                        )
                        portal.token_requests.append({"client": user, "secret": password, "form": body.decode()})
                        self.answer(200, {"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600})
                    elif self.path.startswith("/api/v1/events/") and self.path.endswith("/ack"):
                        portal.acks.append(
                            {
                                "event": self.path.split("/")[4],
                                "auth": self.headers["Authorization"],
                                "body": json.loads(body),
                            }
                        )
                        self.answer(200, {"status": "processed"})
                    elif self.path == "/api/v1/webhook/test":
                        portal.test_event_requests.append(self.headers["Authorization"])
                        self.answer(202, {"id": "7a0c1c9e-0000-4000-8000-000000000009", "type": "webhook.test"})
                    else:
                        self.answer(404, {})

            def answer(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for_acks(self, count: int, timeout: float = 10) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.acks) < count:
            time.sleep(0.02)
        return list(self.acks)


@pytest.fixture
def portal():
    portal = FakePortal()
    yield portal
    portal.server.shutdown()
    portal.server.server_close()


@pytest.fixture
def demo(portal):
    config = DemoPartnerConfig(
        client_id="demo-client",
        client_secret="demo-secret",
        webhook_secret=webhook_secret_generate(),
        portal_url=portal.url,
        listen="127.0.0.1:0",
    )
    lines: list[str] = []
    partner = DemoPartner(config, log=lines.append, retry_pause=0.01)
    server = partner.start()
    partner.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks"
    partner.lines = lines
    yield partner
    partner.stop()


def event(event_id: str = "5f0c1c9e-0000-4000-8000-000000000001") -> dict:
    return {
        "id": event_id,
        "type": "consent.revoked",
        "timestamp": "2026-03-02T09:00:00Z",
        "data": {"subject_id": "sub_abc", "purpose": "offers", "status": "revoked", "granted": False},
    }


def test_demo_partner_verifies_logs_and_acknowledges_through_the_api(settings, demo, portal):
    settings.WEBHOOK_ALLOW_PRIVATE = True

    response = webhook_send(
        url=demo.url, msg_id=event()["id"], body=encode_body(event()), secrets=[demo.config.webhook_secret]
    )

    assert response.status_code == 200
    (ack,) = portal.wait_for_acks(1)
    assert ack["event"] == event()["id"]
    assert ack["auth"] == "Bearer tok-1"
    assert ack["body"] == {"status": "processed", "detail": "Stopped using the data for this purpose."}
    (token_request,) = portal.token_requests
    assert token_request["client"] == "demo-client"
    assert token_request["secret"] == "demo-secret"
    assert "grant_type=client_credentials" in token_request["form"]
    assert "scope=acks%3Awrite" in token_request["form"]
    assert any("received consent.revoked" in line for line in demo.lines)


def test_demo_partner_drops_duplicates_and_reuses_its_token(settings, demo, portal):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    first, second = event(), event("5f0c1c9e-0000-4000-8000-000000000002")

    for payload in (first, first, second):
        status = webhook_send(
            url=demo.url, msg_id=payload["id"], body=encode_body(payload), secrets=[demo.config.webhook_secret]
        ).status_code
        assert status == 200

    acks = portal.wait_for_acks(2)
    time.sleep(0.2)
    assert [a["event"] for a in portal.acks] == [first["id"], second["id"]]
    assert len(acks) == 2
    assert len(portal.token_requests) == 1
    assert any("duplicate" in line for line in demo.lines)


def test_demo_partner_rejects_a_bad_signature_and_acknowledges_nothing(demo, portal):
    body = encode_body(event())
    headers = webhook_headers(msg_id=event()["id"], body=body, secrets=[webhook_secret_generate()])

    status, reason = demo.receive(headers, body.encode())

    assert (status, reason) == (400, "invalid signature")
    time.sleep(0.2)
    assert portal.acks == []


def test_config_comes_from_the_file_and_options_win(tmp_path):
    path = tmp_path / "demo_partner.json"
    path.write_text(
        json.dumps(
            {
                "client_id": "file-id",
                "client_secret": "file-secret",
                "webhook_secret": "whsec_AAAA",
                "portal_url": "http://127.0.0.1:8000",
                "listen": "127.0.0.1:8001",
            }
        )
    )

    config = config_load(path, {"client_id": None, "listen": "127.0.0.1:9001"})

    assert config.client_id == "file-id"
    assert config.listen == "127.0.0.1:9001"
    assert config.address == ("127.0.0.1", 9001)


def test_config_without_credentials_says_how_to_get_them(tmp_path):
    with pytest.raises(CommandError, match="seed_demo"):
        config_load(tmp_path / "absent.json", {})


def test_demo_partner_refuses_to_run_in_production(settings, tmp_path):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("demo_partner", config=str(tmp_path / "none.json"))


def test_demo_site_escapes_what_it_shows_and_refuses_a_callback_it_did_not_start(demo, portal):
    base = demo.url.removesuffix("/webhooks")
    cookie, conn = demo.app.connection("")
    conn.grant_id, conn.categories = "g-1", ["<b>balances</b>"]
    demo.events.append({"id": "<script>alert(1)</script>", "type": "consent.revoked", "data": {"grant_id": "g-1"}})
    demo.events.append({"id": "other", "type": "consent.revoked", "data": {"grant_id": "g-2"}})
    http = httpx.Client(base_url=base, cookies={COOKIE: cookie}, trust_env=False)

    page = http.get("/").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;balances&lt;/b&gt;" in page
    assert "other" not in page  # another grant's webhook is not this connection's
    assert '<form method="post" action="/connect"><button>Connect again</button></form>' in page

    refused = http.get("/callback", params={"code": "c", "state": "forged", "iss": portal.url})
    assert refused.status_code == 303
    assert "not for a request from this browser" in http.get("/").text
    assert portal.token_requests == []
    assert http.get("/nowhere").status_code == 404


def test_demo_site_sends_another_name_for_its_host_to_its_own_origin(demo):
    """The session cookie is per host: a visit through localhost must start where the callback will land."""
    port = demo.url.removesuffix("/webhooks").rpartition(":")[2]
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False)

    home = http.get("/", headers={"host": f"localhost:{port}"})
    callback = http.get("/callback", params={"state": "s"}, headers={"host": f"localhost:{port}"})
    connect = http.post("/connect", headers={"host": f"localhost:{port}"})

    assert (home.status_code, home.headers["location"]) == (302, f"http://127.0.0.1:{port}/")
    assert callback.headers["location"] == f"http://127.0.0.1:{port}/callback?state=s"
    assert (connect.status_code, connect.headers["location"]) == (303, f"http://127.0.0.1:{port}/")
    assert demo.app.connections == {}  # nothing started under the other name
    assert http.get("/").status_code == 200


def test_demo_partner_asks_for_a_test_event_and_does_not_acknowledge_it(settings, demo, portal):
    settings.WEBHOOK_ALLOW_PRIVATE = True

    assert demo.request_test_event() == "7a0c1c9e-0000-4000-8000-000000000009"
    assert portal.test_event_requests == ["Bearer tok-1"]
    assert "webhooks%3Amanage" in portal.token_requests[0]["form"]
    test_event = {"id": "7a0c1c9e-0000-4000-8000-000000000009", "type": "webhook.test", "data": {}}
    response = webhook_send(
        url=demo.url, msg_id=test_event["id"], body=encode_body(test_event), secrets=[demo.config.webhook_secret]
    )
    assert response.status_code == 200
    assert any("received webhook.test" in line for line in demo.lines)
    # Acknowledgements go out in order: a later event's arriving means the test event was skipped.
    webhook_send(url=demo.url, msg_id=event()["id"], body=encode_body(event()), secrets=[demo.config.webhook_secret])
    (ack,) = portal.wait_for_acks(1)
    assert ack["event"] == event()["id"]


def test_demo_partner_reports_a_refused_test_event_request(settings, demo, portal):
    portal.server.shutdown()
    portal.server.server_close()
    demo.retry_pause = 0

    assert demo.request_test_event() is None
    assert any("test event request failed" in line for line in demo.lines)
