"""The receiving partner of the fault suite: verifies every webhook, applies each ``webhook-id`` once.

It does what the partner docs ask: verify the Standard Webhooks signature, answer 2xx, and
de-duplicate on ``webhook-id`` (delivery is at least once). It counts deliveries received per id
and how often each id was *applied* (it must be once), and can answer slowly so that deliveries
are in flight when a worker is killed.
"""

import contextlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultReceiver:
    """A threaded HTTP server on 127.0.0.1 recording every signed delivery by ``webhook-id``."""

    def __init__(self, secret: str, *, delay: float = 0.0) -> None:
        from standardwebhooks import Webhook

        self.secret = secret
        self.webhook = Webhook(secret)
        self.delay = delay
        self.lock = threading.Lock()
        self.received: Counter[str] = Counter()
        self.applied: Counter[str] = Counter()
        self.first_arrival: dict[str, float] = {}
        self.state: dict[tuple[str, str], bool] = {}  # (subject, purpose) → granted, the partner's copy
        self.bad_signatures = 0
        self.in_flight = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.in_flight += 1
                try:
                    status = receiver.handle(body, dict(self.headers.items()))
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1
                # The sender may have been killed while it waited: nobody reads this answer then.
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a connection reset by a killed sender is part of the scenario, not an error

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"

    def handle(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            self.webhook.verify(body, headers)
        except Exception:
            with self.lock:
                self.bad_signatures += 1
            return 400
        webhook_id = headers.get("webhook-id") or headers.get("Webhook-Id", "")
        if self.delay:
            time.sleep(self.delay)  # the partner's own work, while the sender waits
        event = json.loads(body)
        with self.lock:
            self.received[webhook_id] += 1
            self.first_arrival.setdefault(webhook_id, time.monotonic())
            if webhook_id in self.applied:
                return 204  # a duplicate: acknowledged, not applied again
            self.applied[webhook_id] += 1
            data = event.get("data", {})
            if "purpose" in data:
                self.state[(data["subject_id"], data["purpose"])] = bool(data.get("granted"))
        return 204

    def ids(self) -> set[str]:
        with self.lock:
            return set(self.received)

    def duplicates_received(self) -> int:
        with self.lock:
            return sum(count - 1 for count in self.received.values())

    def duplicates_applied(self) -> int:
        with self.lock:
            return sum(count - 1 for count in self.applied.values())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
