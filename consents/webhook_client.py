"""The client for partners' webhook endpoints: Standard Webhooks signing, an SSRF guard and one POST.

Everything that talks to a partner's endpoint is here, and every failure leaves as ``WebhookError``.
The caller (``consents.services.delivery``) decides what an outcome means for the event; this module
only sends.

The SSRF guard requires ``https`` (plain ``http`` only with ``WEBHOOK_ALLOW_PRIVATE`` outside
production, for development and the demo partner), resolves the URL's host once, refuses addresses
that are not on the public internet (unless ``WEBHOOK_ALLOW_PRIVATE`` is on; link-local and cloud
metadata addresses always), and then connects to exactly the address it checked, so a DNS answer
that changes between the check and the connection (DNS rebinding) cannot redirect the request. TLS
still verifies the certificate for the original host name (sent as SNI), and the ``Host`` header
names the original host. Staff saving a webhook URL meet the same guard (``webhook_url_refusal``).
"""

import ipaddress
import json
import socket
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import certifi
import httpx
from django.conf import settings
from standardwebhooks import Webhook

USER_AGENT = "PrivacyPortal-Webhooks/1.0"
ERROR_EXCERPT_BYTES = 300

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance-metadata and platform endpoints: refused even when private addresses are allowed,
# because reaching them from a worker can leak credentials. Some of them count as "global".
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "169.254.169.0/24",  # AWS, GCP, Azure, OpenStack, DigitalOcean metadata, AWS DNS and NTP
        "169.254.170.2/32",  # AWS ECS task metadata
        "fd00:ec2::/32",  # AWS IMDS over IPv6
        "100.100.100.200/32",  # Alibaba Cloud
        "192.0.0.192/32",  # Oracle Cloud
        "168.63.129.16/32",  # Azure wire server
    )
)
# NAT64 embeds an IPv4 address in the last 32 bits.
NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")


class WebhookError(Exception):
    """A delivery that got no HTTP answer: refused by the guard, or a network failure or timeout."""

    def __init__(self, message: str, *, refused: bool = False, duration_ms: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.refused = refused
        self.duration_ms = duration_ms


@dataclass(frozen=True)
class WebhookResponse:
    status_code: int
    duration_ms: int
    retry_after: timedelta | None
    body_excerpt: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


def _embedded_ipv4(address: IPAddress) -> list[IPAddress]:
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    embedded: list[IPAddress] = []
    if address.ipv4_mapped:
        embedded.append(address.ipv4_mapped)
    if address.sixtofour:
        embedded.append(address.sixtofour)
    if address.teredo:
        embedded.append(address.teredo[1])
    if address in NAT64_NETWORK:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def address_refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a webhook may not be sent to this address, or ``None`` if it may."""
    for candidate in [address, *_embedded_ipv4(address)]:
        if any(candidate in net for net in METADATA_NETWORKS):
            return f"{address} is a cloud metadata address"
        if candidate.is_multicast or candidate.is_unspecified:
            return f"{address} is not a unicast address"
        # 169.254.0.0/16 and fe80::/10, whatever WEBHOOK_ALLOW_PRIVATE says: no development set-up
        # needs them, and they hold metadata and platform services beyond the well-known addresses.
        if candidate.is_link_local:
            return f"{address} is a link-local address"
        if allow_private:
            continue
        if candidate.is_loopback:
            return f"{address} is a loopback address"
        if candidate.is_private:
            return f"{address} is a private address"
        if candidate.is_reserved or not candidate.is_global:
            return f"{address} is a reserved address"
    return None


def http_allowed() -> bool:
    """Plain http only where private endpoints are allowed, and never in production."""
    return bool(settings.WEBHOOK_ALLOW_PRIVATE) and settings.PORTAL_ENV != "production"


def webhook_url_refusal(url: str) -> str | None:
    """Why staff may not save ``url`` as a webhook endpoint, or ``None``: the guard used at send time.

    A name that does not resolve yet is accepted (the partner may still be setting up DNS); every
    delivery checks the address again before connecting.
    """
    try:
        resolve_checked(url)
    except WebhookError as exc:
        return exc.message if exc.refused else None
    return None


def resolve_checked(url: str) -> tuple[str, str, list[IPAddress], int]:
    """Scheme, host name, the checked addresses (in resolver order) and the port ``url`` may be sent to.

    Every address the name resolves to must pass: a name that answers with one public and one
    private address is refused rather than trusted half-way.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"} or (scheme == "http" and not http_allowed()):
        raise WebhookError(f"scheme {scheme or '(none)'!r} is not allowed; use https", refused=True)
    host = parts.hostname
    if not host:
        raise WebhookError("the webhook URL has no host", refused=True)
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise WebhookError(f"invalid port: {exc}", refused=True) from exc
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookError(f"cannot resolve {host}: {exc}") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise WebhookError(f"{host} has no addresses")
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE
    for address in addresses:
        if reason := address_refusal(address, allow_private=allow_private):
            raise WebhookError(f"refused: {reason}", refused=True)
    return scheme, host, addresses, port


def signature_header(*, secrets: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per secret, space-separated."""
    return " ".join(Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body) for secret in secrets)


def webhook_headers(*, msg_id: str, body: str, secrets: list[str], at: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt. The id stays the same on every retry."""
    at = at or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature_header(secrets=secrets, msg_id=msg_id, timestamp=at, body=body),
    }


def encode_body(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> timedelta | None:
    """``Retry-After`` as seconds or an HTTP date; ``None`` if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - (now or datetime.now(UTC)))


@cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client: building one loads the CA bundle (a good part of a
    second of CPU on a busy machine), which each new partner's client would otherwise pay again."""
    return ssl.create_default_context(cafile=certifi.where())


class _ClientPool:
    """One keep-alive client per (scheme, host, checked address, port), per process.

    Keying on the host name too means a connection opened (and TLS-verified) for one partner is
    never reused for another partner that happens to share the address.
    """

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.clients: OrderedDict[tuple[str, str, str, int], httpx.Client] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str, str, int], timeout: float) -> httpx.Client:
        with self.lock:
            client = self.clients.pop(key, None)
            if client is None:
                client = httpx.Client(
                    timeout=httpx.Timeout(timeout),
                    verify=_tls_context(),
                    follow_redirects=False,
                    trust_env=False,  # a proxy from the environment would undo the address pinning
                    limits=httpx.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=30),
                )
            self.clients[key] = client
            while len(self.clients) > self.size:
                _key, old = self.clients.popitem(last=False)
                old.close()
            return client


_pool = _ClientPool()


def webhook_send(
    *, url: str, msg_id: str, body: str, secrets: list[str], request_id: str | None = None
) -> WebhookResponse:
    """POST one signed event to ``url``. Any HTTP answer is returned; anything else raises ``WebhookError``.

    ``request_id`` goes out as ``X-Request-ID`` (outside the signature: the signed content stays
    the Standard Webhooks id, timestamp and body), so both sides' logs can name the same request.
    """
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        scheme, host, addresses, port = resolve_checked(url)
    except WebhookError as exc:
        exc.duration_ms = elapsed_ms()
        raise
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port == (443 if scheme == "https" else 80) else f"{bracketed}:{port}"
    headers = {
        **webhook_headers(msg_id=msg_id, body=body, secrets=secrets),
        "Host": host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **({"X-Request-ID": request_id} if request_id else {}),
    }
    for index, address in enumerate(addresses):
        # Connect to the checked address itself (never re-resolve); try the next one only if the
        # connection could not be opened, so nothing is ever sent twice.
        target = httpx.URL(url).copy_with(host=str(address), port=port)
        client = _pool.get((scheme, host, str(address), port), settings.WEBHOOK_TIMEOUT_SECONDS)
        try:
            with client.stream(
                "POST", target, content=body.encode(), headers=headers, extensions={"sni_hostname": host}
            ) as response:
                excerpt = b""
                for chunk in response.iter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= ERROR_EXCERPT_BYTES:
                        break
        except httpx.ConnectError as exc:
            if index + 1 < len(addresses):
                continue
            raise WebhookError(f"{type(exc).__name__}: {exc}"[:300], duration_ms=elapsed_ms()) from exc
        except httpx.TimeoutException as exc:
            raise WebhookError(f"timed out: {type(exc).__name__}", duration_ms=elapsed_ms()) from exc
        except httpx.HTTPError as exc:
            raise WebhookError(f"{type(exc).__name__}: {exc}"[:300], duration_ms=elapsed_ms()) from exc
        break
    return WebhookResponse(
        status_code=response.status_code,
        duration_ms=elapsed_ms(),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        body_excerpt=excerpt[:ERROR_EXCERPT_BYTES].decode("utf-8", "replace"),
    )
