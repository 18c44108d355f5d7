"""A local demo partner: receives the portal's webhooks, verifies them, drops duplicates and acknowledges them.

It behaves like a well-built partner integration, so a new user sees the whole loop in the running
demo: revoke in the browser → the partner receives the signed event → it acknowledges through the
partner API with its own OAuth client credentials → the portal shows "confirmed". At start-up it
asks the portal for a signed test event (``POST /api/v1/webhook/test``, scope ``webhooks:manage``),
as a partner checks its endpoint after deploying it.

On the same port it serves the partner's website (``portal.demo.app_client``): a consumer connects
their Privacy Portal account to the partner's connected app, and the app reads their demo data.

Configuration comes from ``var/demo_partner.json`` (written by ``seed_demo``)::

    {"client_id": "...", "client_secret": "...", "webhook_secret": "whsec_...",
     "app_client_id": "...", "app_client_secret": "...",
     "portal_url": "http://127.0.0.1:8000", "listen": "127.0.0.1:8001"}

or from the command's options, which win over the file.
"""

import json
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from portal.demo.app_client import COOKIE, DemoApp

MAX_BODY_BYTES = 1_000_000
SEEN_IDS_KEPT = 10_000
EVENTS_SHOWN = 100
# One token for everything the demo partner does with the partner API.
PARTNER_API_SCOPES = "acks:write access:write webhooks:manage"
ACK_ATTEMPTS = 5
# The portal may still be starting (``make run`` starts both at once): ask for the test event this often.
TEST_EVENT_ATTEMPTS = 10
TOKEN_EARLY_REFRESH_SECONDS = 30
ACK_DETAILS = {
    "consent.revoked": "Stopped using the data for this purpose.",
    "consent.expired": "Stopped using the data for this purpose.",
    "consent.reconsent_required": "Paused use until the consumer decides again.",
    "consent.granted": "Recorded the consent.",
    "subject.erasure_requested": "Erased the subject's data.",
}


class AckError(Exception):
    """The portal's token or acknowledgement endpoint did not accept the request."""


@dataclass(frozen=True)
class DemoPartnerConfig:
    client_id: str
    client_secret: str
    webhook_secret: str
    portal_url: str = "http://127.0.0.1:8000"
    listen: str = "127.0.0.1:8001"
    # The connected app's OAuth client (its website's), separate from the partner API credential.
    app_client_id: str = ""
    app_client_secret: str = ""

    @property
    def address(self) -> tuple[str, int]:
        host, _sep, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


class PortalClient:
    """The partner side of the API: a client-credentials token, cached until shortly before it expires."""

    def __init__(self, config: DemoPartnerConfig, http: httpx.Client | None = None) -> None:
        self.config = config
        self.http = http or httpx.Client(timeout=10, trust_env=False)
        self.token = ""
        self.token_expires = 0.0
        self.lock = threading.Lock()

    def access_token(self) -> str:
        with self.lock:
            if self.token and time.monotonic() < self.token_expires:
                return self.token
            try:
                response = self.http.post(
                    f"{self.config.portal_url.rstrip('/')}/oauth/token/",
                    data={"grant_type": "client_credentials", "scope": PARTNER_API_SCOPES},
                    auth=(self.config.client_id, self.config.client_secret),
                )
            except httpx.HTTPError as exc:
                raise AckError(f"token request failed: {exc}") from exc
            if response.status_code != 200:
                raise AckError(f"token request answered {response.status_code}: {response.text[:200]}")
            body = response.json()
            self.token = body["access_token"]
            lifetime = float(body.get("expires_in", 3600))
            self.token_expires = time.monotonic() + max(0.0, lifetime - TOKEN_EARLY_REFRESH_SECONDS)
            return self.token

    def forget_token(self) -> None:
        with self.lock:
            self.token = ""

    def ack(self, event_id: str, status: str, detail: str) -> None:
        url = f"{self.config.portal_url.rstrip('/')}/api/v1/events/{event_id}/ack"
        for retry_with_new_token in (True, False):
            try:
                response = self.http.post(
                    url,
                    json={"status": status, "detail": detail},
                    headers={"Authorization": f"Bearer {self.access_token()}"},
                )
            except httpx.HTTPError as exc:
                raise AckError(f"acknowledgement failed: {exc}") from exc
            if response.status_code == 401 and retry_with_new_token:
                self.forget_token()  # revoked or expired early: fetch a new one once
                continue
            if response.status_code >= 300:
                raise AckError(f"acknowledgement answered {response.status_code}: {response.text[:200]}")
            return

    def webhook_test(self) -> str:
        """Ask the portal for a signed test event to this partner's endpoint; returns its delivery id."""
        url = f"{self.config.portal_url.rstrip('/')}/api/v1/webhook/test"
        for retry_with_new_token in (True, False):
            try:
                response = self.http.post(url, headers={"Authorization": f"Bearer {self.access_token()}"})
            except httpx.HTTPError as exc:
                raise AckError(f"test event request failed: {exc}") from exc
            if response.status_code == 401 and retry_with_new_token:
                self.forget_token()
                continue
            if response.status_code >= 300:
                raise AckError(f"test event request answered {response.status_code}: {response.text[:200]}")
            return str(response.json()["id"])
        raise AckError("test event request was not authorised")

    def report_access(self, event: dict[str, Any]) -> str:
        """Report one access to the portal; returns the portal's verdict for it, or why it failed."""
        url = f"{self.config.portal_url.rstrip('/')}/api/v1/access-events"
        for retry_with_new_token in (True, False):
            try:
                response = self.http.post(
                    url, json={"events": [event]}, headers={"Authorization": f"Bearer {self.access_token()}"}
                )
            except (httpx.HTTPError, AckError) as exc:
                return f"failed: {exc}"
            if response.status_code == 401 and retry_with_new_token:
                self.forget_token()
                continue
            if response.status_code >= 300:
                return f"failed: {response.status_code}"
            return str(response.json()["results"][0].get("status"))
        return "failed"


class DemoPartner:
    """Verifies and de-duplicates incoming webhooks; acknowledges each new event from a background thread."""

    def __init__(
        self,
        config: DemoPartnerConfig,
        *,
        portal: PortalClient | None = None,
        log: Callable[[str], None] = print,
        retry_pause: float = 2.0,
    ) -> None:
        self.config = config
        self.webhook = Webhook(config.webhook_secret)
        self.portal = portal or PortalClient(config)
        self.log = log
        self.retry_pause = retry_pause
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.seen_lock = threading.Lock()
        self.acks: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_SHOWN)
        self.server: ThreadingHTTPServer | None = None
        self.app = DemoApp(config, portal=self.portal, webhooks=lambda: list(self.events), log=log)

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        """Handle one webhook request; returns the HTTP status and a short reason."""
        try:
            event = self.webhook.verify(body, headers)
        except WebhookVerificationError as exc:
            self.log(f"rejected a webhook: {exc}")
            return 400, "invalid signature"
        msg_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        with self.seen_lock:
            if msg_id in self.seen:
                self.log(f"duplicate {msg_id} ignored")
                return 200, "duplicate"
            self.seen[msg_id] = None
            while len(self.seen) > SEEN_IDS_KEPT:
                self.seen.popitem(last=False)
        data = event.get("data", {})
        self.log(
            f"received {event.get('type')} {msg_id} subject={data.get('subject_id')} "
            f"purpose={data.get('purpose', '-')} at {event.get('timestamp')}"
        )
        self.events.append(event)
        if event.get("type") != "webhook.test":  # a test event concerns no one and is not acknowledged
            self.acks.put(event)
        return 200, "ok"

    def request_test_event(self) -> str | None:
        """Ask the portal for a test event, retrying while it starts; returns the delivery id, or None."""
        for attempt in range(1, TEST_EVENT_ATTEMPTS + 1):
            try:
                delivery_id = self.portal.webhook_test()
            except AckError as exc:
                self.log(f"test event request failed (attempt {attempt}/{TEST_EVENT_ATTEMPTS}): {exc}")
                time.sleep(self.retry_pause * attempt)
            else:
                self.log(f"asked the portal for a test event: delivery {delivery_id}")
                return delivery_id
        return None

    def acknowledge_forever(self) -> None:
        while (event := self.acks.get()) is not None:
            detail = ACK_DETAILS.get(str(event.get("type")), "Processed.")
            for attempt in range(1, ACK_ATTEMPTS + 1):
                try:
                    self.portal.ack(str(event["id"]), "processed", detail)
                except AckError as exc:
                    self.log(f"ack of {event['id']} failed (attempt {attempt}/{ACK_ATTEMPTS}): {exc}")
                    time.sleep(self.retry_pause * attempt)
                else:
                    self.log(f"acknowledged {event['id']}: {detail}")
                    break

    def make_server(self) -> ThreadingHTTPServer:
        partner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self.reply(413, "too large")
                    return
                body = self.rfile.read(length)
                if urlsplit(self.path).path in ("/connect", "/read"):
                    self.website("POST", dict(parse_qsl(body.decode(errors="replace"))))
                    return
                status, reason = partner.receive(dict(self.headers.items()), body)
                self.reply(status, reason)

            def do_GET(self) -> None:
                self.website("GET", {})

            def website(self, method: str, form: dict[str, str]) -> None:
                url = urlsplit(self.path)
                cookies = dict(
                    part.strip().partition("=")[::2] for part in (self.headers.get("Cookie") or "").split(";")
                )
                page = partner.app.handle(
                    method,
                    url.path,
                    dict(parse_qsl(url.query)),
                    form,
                    cookies.get(COOKIE, ""),
                    host=self.headers.get("Host", ""),
                )
                body = page.body.encode()
                self.send_response(page.status)
                self.send_header("Content-Type", page.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Set-Cookie", page.cookie)
                if page.location:
                    self.send_header("Location", page.location)
                self.end_headers()
                self.wfile.write(body)

            def reply(self, status: int, reason: str) -> None:
                body = json.dumps({"result": reason}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(self.config.address, Handler)
        # The configured name, with the port the system chose when the configuration said 0.
        self.app.bound(f"{self.config.listen.rpartition(':')[0]}:{self.server.server_address[1]}")
        return self.server

    def start(self) -> ThreadingHTTPServer:
        """Serve and acknowledge in background threads (for tests and embedding)."""
        server = self.make_server()
        threading.Thread(target=server.serve_forever, daemon=True, name="demo-partner-http").start()
        threading.Thread(target=self.acknowledge_forever, daemon=True, name="demo-partner-acks").start()
        return server

    def stop(self) -> None:
        self.acks.put(None)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def config_load(path: Path, overrides: dict[str, str | None]) -> DemoPartnerConfig:
    values: dict[str, str] = {}
    if path.exists():
        try:
            values = {k: str(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
    values.update({k: v for k, v in overrides.items() if v})
    missing = [k for k in ("client_id", "client_secret", "webhook_secret") if not values.get(k)]
    if missing:
        raise CommandError(
            f"missing {', '.join(missing)}: run `manage.py seed_demo` to write {path}, or pass them as options"
        )
    known = DemoPartnerConfig.__dataclass_fields__
    return DemoPartnerConfig(**{k: v for k, v in values.items() if k in known})


class Command(BaseCommand):
    help = "Run a local demo partner that receives, verifies, de-duplicates and acknowledges webhooks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--config", default=str(settings.VAR_DIR / "demo_partner.json"))
        parser.add_argument("--listen", help="host:port to listen on (default 127.0.0.1:8001)")
        parser.add_argument("--portal-url", help="the portal's base URL (default http://127.0.0.1:8000)")
        parser.add_argument("--client-id")
        parser.add_argument("--client-secret")
        parser.add_argument("--webhook-secret")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("demo_partner is a development tool and refuses to run when PORTAL_ENV=production.")
        config = config_load(
            Path(options["config"]),
            {
                "listen": options["listen"],
                "portal_url": options["portal_url"],
                "client_id": options["client_id"],
                "client_secret": options["client_secret"],
                "webhook_secret": options["webhook_secret"],
            },
        )
        partner = DemoPartner(config, log=lambda line: self.stdout.write(line))
        server = partner.make_server()
        threading.Thread(target=partner.acknowledge_forever, daemon=True, name="demo-partner-acks").start()
        threading.Thread(target=partner.request_test_event, daemon=True, name="demo-partner-test-event").start()
        self.stdout.write(f"demo partner listening on http://{config.listen}/ and acknowledging to {config.portal_url}")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            partner.acks.put(None)
            server.server_close()
