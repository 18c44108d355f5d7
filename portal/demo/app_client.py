"""The demo partner's website: "Connect your Privacy Portal account", as a partner would build it.

Plain server-rendered HTML on the demo partner's port (``manage.py demo_partner``). The flow is
the portal's connected-app flow seen from the partner: pushed authorisation request with PKCE →
the portal's consent screen → ``/callback`` exchanges the code → "Read my demo data" calls the
partner's own resource, which checks the token by introspection on every call (never trusting a
cached answer, so a withdrawal takes effect at once) and reports the access to the portal. The
``consent.revoked`` webhook the partner received for the grant is shown next to a refused read.

State is in memory, one entry per browser cookie: it is a demo, not a partner's real storage.
"""

import base64
import hashlib
import html
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

if TYPE_CHECKING:
    from consents.management.commands.demo_partner import DemoPartnerConfig, PortalClient

COOKIE = "demo_partner_session"
PURPOSE = "personalised-offers"
# What the app asks for: transactions it cannot work without, the rest the consumer may refuse.
REQUESTED_CATEGORIES = [
    {"category": "transaction-history", "required": True, "reason": "To tailor offers to what you buy."},
    {"category": "account-balances", "reason": "To suggest offers you can afford."},
    {"category": "contact-details", "reason": "To email you the offers."},
]
# The demo resource: made-up data per category; a read returns only what the grant allows.
DEMO_DATA = {
    "transaction-history": "3 purchases this week: groceries 42.10, books 18.00, train 9.60",
    "account-balances": "Current account: 1,284.55",
    "contact-details": "demo@example.com",
}


def pkce_pair() -> tuple[str, str]:
    """An RFC 7636 verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class Connection:
    """One browser's state at the partner: a pending authorisation, then the tokens and grant."""

    state: str = ""
    verifier: str = ""
    access_token: str = ""
    refresh_token: str = ""
    grant_id: str = ""
    categories: list[str] = field(default_factory=list)
    message: str = ""
    data: dict[str, str] = field(default_factory=dict)
    refused: bool = False


@dataclass
class Page:
    status: int
    body: str = ""
    location: str = ""
    cookie: str = ""
    content_type: str = "text/html; charset=utf-8"


class DemoApp:
    """The partner's pages and demo resource; ``webhooks`` is the receiver's list of verified events."""

    def __init__(
        self,
        config: "DemoPartnerConfig",
        *,
        portal: "PortalClient",
        webhooks: Callable[[], list[dict[str, Any]]],
        http: httpx.Client | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.portal = portal
        self.webhooks = webhooks
        self.http = http or httpx.Client(timeout=10, trust_env=False)
        self.log = log
        self.connections: dict[str, Connection] = {}
        self.lock = threading.Lock()
        self.base = config.portal_url.rstrip("/")
        self.bound(config.listen)

    def bound(self, listen: str) -> None:
        """The host:port the site answers on (known once the server is bound): its one origin.

        The registered redirect URI names it, and the browser's session cookie is per host, so a
        visit through another name for the same server (``localhost`` for ``127.0.0.1``) is sent
        to this one first; otherwise the portal's answer would come back to a browser session that
        never started the request.
        """
        self.listen = listen
        self.redirect_uri = f"http://{listen}/callback"

    @property
    def client_auth(self) -> tuple[str, str]:
        return self.config.app_client_id, self.config.app_client_secret

    def connection(self, cookie: str) -> tuple[str, Connection]:
        with self.lock:
            if cookie not in self.connections:
                cookie = secrets.token_urlsafe(24)
                self.connections[cookie] = Connection()
            return cookie, self.connections[cookie]

    # Pages ----------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], form: dict[str, str], cookie: str, host: str = ""
    ) -> Page:
        """Route one browser request; unknown paths are 404, other host names are sent to the site's own."""
        if host and host != self.listen:
            if method == "GET":
                return Page(302, location=f"http://{self.listen}{path}" + (f"?{urlencode(query)}" if query else ""))
            return Page(303, location=f"http://{self.listen}/")
        cookie, conn = self.connection(cookie)
        routes: dict[tuple[str, str], Callable[[Connection, dict[str, str]], Page]] = {
            ("GET", "/"): lambda c, _p: self.home(c),
            ("POST", "/connect"): lambda c, _p: self.connect(c),
            ("GET", "/callback"): self.callback,
            ("POST", "/read"): lambda c, _p: self.read(c),
        }
        route = routes.get((method, path))
        page = route(conn, query if method == "GET" else form) if route else Page(404, "Not found")
        page.cookie = f"{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Lax"
        return page

    def home(self, conn: Connection) -> Page:
        e = html.escape
        parts = ["<h1>Meridian Offers</h1>"]
        if conn.message:
            parts.append(f'<p role="status">{e(conn.message)}</p>')
        connect = '<form method="post" action="/connect"><button>{}</button></form>'.format(
            "Connect again" if conn.grant_id else "Connect your Privacy Portal account"
        )
        if not conn.grant_id:
            parts.append("<p>Offers picked for you from your bank data, with your consent.</p>" + connect)
        else:
            items = "".join(f"<li>{e(c)}</li>" for c in conn.categories)
            parts.append(
                f"<h2>Your connection</h2><p>Grant: <code id=grant-id>{e(conn.grant_id)}</code></p>"
                f'<p>Approved data:</p><ul id="approved-categories">{items}</ul>'
                '<form method="post" action="/read"><button>Read my demo data</button></form>'
            )
            if conn.data:
                rows = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in conn.data.items())
                parts.append(f'<h2>Your demo data</h2><dl id="demo-data">{rows}</dl>')
            events = [w for w in self.webhooks() if w.get("data", {}).get("grant_id") == conn.grant_id]
            if events:
                items = "".join(
                    f"<li><code>{e(str(w.get('type')))}</code> {e(str(w.get('id')))} at "
                    f"{e(str(w.get('timestamp')))}</li>"
                    for w in events
                )
                parts.append(f'<h2>Webhooks received for this grant</h2><ul id="webhooks">{items}</ul>')
            # After a withdrawal (or at any time) the consumer can connect again from the app.
            parts.append(connect)
        body = "".join(parts)
        return Page(
            200,
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Meridian Offers</title></head>'
            f"<body><main>{body}</main></body></html>",
        )

    def connect(self, conn: Connection) -> Page:
        """Push the authorisation request (PKCE, state) and send the browser to the portal's consent screen."""
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        details = [
            {
                "type": "portal_data_access",
                "purpose": PURPOSE,
                "data_categories": REQUESTED_CATEGORIES,
                "duration": {"type": "time_bound", "period_days": 90},
                "lookback_days": 365,
            }
        ]
        try:
            response = self.http.post(
                f"{self.base}/connect/par",
                data={
                    "response_type": "code",
                    "redirect_uri": self.redirect_uri,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                    "state": state,
                    "authorization_details": json.dumps(details),
                },
                auth=self.client_auth,
            )
        except httpx.HTTPError as exc:
            return self.back(conn, f"The portal could not be reached: {exc}")
        if response.status_code != 201:
            return self.back(conn, f"The portal refused the request ({response.status_code}): {response.text[:200]}")
        conn.state, conn.verifier = state, verifier
        query = urlencode({"client_id": self.config.app_client_id, "request_uri": response.json()["request_uri"]})
        return Page(303, location=f"{self.base}/connect/authorize?{query}")

    def callback(self, conn: Connection, params: dict[str, str]) -> Page:
        """Check state and issuer (RFC 9207), then exchange the code with the PKCE verifier."""
        if not conn.state or not secrets.compare_digest(params.get("state", ""), conn.state):
            return self.back(conn, "That answer was not for a request from this browser: connect again.")
        conn.state = ""
        if params.get("iss") != self.issuer():
            return self.back(conn, "That answer did not come from the Privacy Portal: connect again.")
        if "error" in params:
            return self.back(conn, f"Not connected: {params['error']}.")
        response = self.http.post(
            f"{self.base}/oauth/token/",
            data={
                "grant_type": "authorization_code",
                "code": params.get("code", ""),
                "redirect_uri": self.redirect_uri,
                "code_verifier": conn.verifier,
            },
            auth=self.client_auth,
        )
        if response.status_code != 200:
            return self.back(conn, f"The code was refused ({response.status_code}).")
        body = response.json()
        details = body.get("authorization_details") or [{}]
        conn.access_token, conn.refresh_token = body["access_token"], body.get("refresh_token", "")
        conn.grant_id = str(body["grant_id"])
        conn.categories = sorted(c["category"] for c in details[0].get("data_categories", []))
        conn.data, conn.refused = {}, False
        self.log(f"connected: grant {conn.grant_id} for {', '.join(conn.categories)}")
        return self.back(conn, "Connected.")

    def read(self, conn: Connection) -> Page:
        if not conn.grant_id:
            return self.back(conn, "Connect first.")
        status, result = self.resource(conn.access_token)
        if status == 401 and conn.refresh_token and self.refresh(conn):
            status, result = self.resource(conn.access_token)
        if status == 200:
            conn.data, conn.refused = result["data"], False
            return self.back(conn, f"Read at {result['read_at']}; the access was reported to the Privacy Portal.")
        conn.data, conn.refused = {}, True
        return self.back(conn, "Access refused: the Privacy Portal says this connection is no longer active.")

    def back(self, conn: Connection, message: str) -> Page:
        conn.message = message
        return Page(303, location="/")

    # The partner's side of the portal --------------------------------------------------------

    def issuer(self) -> str:
        response = self.http.get(f"{self.base}/.well-known/oauth-authorization-server")
        return str(response.json().get("issuer", "")) if response.status_code == 200 else ""

    def refresh(self, conn: Connection) -> bool:
        """A new access token from the refresh token; refused once the consumer withdrew."""
        response = self.http.post(
            f"{self.base}/oauth/token/",
            data={"grant_type": "refresh_token", "refresh_token": conn.refresh_token},
            auth=self.client_auth,
        )
        if response.status_code != 200:
            conn.refresh_token = ""
            return False
        body = response.json()
        conn.access_token, conn.refresh_token = body["access_token"], body.get("refresh_token", "")
        return True

    def resource(self, token: str) -> tuple[int, dict[str, Any]]:
        """The demo resource: introspect the token (live, every call), serve what it allows, report the read."""
        response = self.http.post(f"{self.base}/oauth/introspect/", data={"token": token}, auth=self.client_auth)
        answer: dict[str, Any] = response.json() if response.status_code == 200 else {"active": False}
        if not answer.get("active"):
            self.log("read refused: the token is not active")
            return 401, {"error": "invalid_token"}
        categories = [c for c in answer["data_categories"] if c in DEMO_DATA]
        now = datetime.now(UTC)
        event = {
            "event_id": f"demo-read-{uuid.uuid4().hex}",
            "subject_id": answer["sub"],
            "purpose": answer["purpose"],
            "categories": categories,
            "accessed_at": now.isoformat(),
            "action": "read",
            "detail": "Meridian Offers read your data to pick offers.",
        }
        report = self.portal.report_access(event)
        self.log(f"read for grant {answer['grant_id']}: {', '.join(categories)}; reported: {report}")
        return 200, {"data": {c: DEMO_DATA[c] for c in categories}, "read_at": now.strftime("%H:%M:%S UTC")}
